"""The streaming answers of the Kubernetes API: watches and container logs.

A watch sends the objects a client asked for (unless it names a resourceVersion),
then every change after it from master/api/kube/watch.py's window, as JSON lines;
with `sendInitialEvents` (kubectl's streaming lists) a bookmark marks the end of
the initial objects, with `allowWatchBookmarks` idle streams get bookmarks, and a
version older than the window is a 410 ERROR event. `pods/NAME/log` streams the
bytes the pod's agent sends over its node session (master/api/logs.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web

from kernel.clock import Clock
from master.api.kube import errors, leases, objects
from master.api.kube.http import flag as _flag
from master.api.kube.resources import Resource
from master.api.kube.selectors import parse_field_selector, parse_label_selector
from master.api.kube.tables import render_table, wants_table
from master.api.kube.watch import Change, TooOld, WatchHub
from master.api.logs import LogQuery, LogRefused, LogRelay, LogUnavailable, locate
from master.model import DEFAULT_NAMESPACE
from master.state import ClusterState

Obj = dict[str, Any]

DEFAULT_WATCH_SECONDS = 1800
BOOKMARK_SECONDS = 15.0


class Streams:
    """Watch and log handlers; KubeApi inherits them (and fills these attributes)."""

    state: ClusterState
    clock: Clock
    hub: WatchHub
    started_at: float
    logs: LogRelay | None

    def _selected(self, request: web.Request, items: list[Obj]) -> list[Obj]:
        try:
            labels = parse_label_selector(request.query.get("labelSelector", ""))
            fields = parse_field_selector(request.query.get("fieldSelector", ""))
        except ValueError as e:
            raise errors.bad_request(str(e)) from None
        return [
            o for o in items
            if labels(o.get("metadata", {}).get("labels") or {}) and fields(o)
        ]  # fmt: skip

    async def _watch(
        self, request: web.Request, r: Resource, namespace: str | None = None
    ) -> web.StreamResponse:
        """Changes of the resource in `namespace` (None: every namespace)."""
        if r.kind in ("Endpoints", "EndpointSlice", "ReplicaSet", "IngressClass", "StorageClass"):
            return await self._watch_static(request, r, namespace)
        if r.kind == "Lease":
            return await self._watch_leases(request, namespace)
        rv_text = request.query.get("resourceVersion", "")
        since: int | None = None
        # Streaming lists (kubectl 1.3x's WatchList): the current objects, then a bookmark
        # marking the end of them, then changes.
        initial = _flag(request, "sendInitialEvents")
        if rv_text not in ("", "0") and not initial:
            if not rv_text.isdigit():
                raise errors.bad_request(f"resourceVersion {rv_text[:30]!r} is not a number")
            since = int(rv_text)
        try:
            watcher, backlog = self.hub.open(r.kind, since, namespace)
        except TooOld as e:
            # As the API server does: a 200 stream whose one event is an ERROR with the
            # 410 Status; clients then list again.
            return await self._stream_error(request, errors.gone(str(e)))
        try:
            labels = parse_label_selector(request.query.get("labelSelector", ""))
            fields = parse_field_selector(request.query.get("fieldSelector", ""))
        except ValueError as e:
            self.hub.release(watcher)
            raise errors.bad_request(str(e)) from None
        table = wants_table(request.headers.get("Accept", ""))
        bookmarks = _flag(request, "allowWatchBookmarks")
        timeout = request.query.get("timeoutSeconds", "")
        seconds = int(timeout) if timeout.isdigit() else DEFAULT_WATCH_SECONDS
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        now = self.clock.now()

        async def send(type_: str, obj: Obj) -> None:
            payload = obj
            if table and type_ != "BOOKMARK":
                payload = render_table(
                    r.kind, [obj], self.clock.now(), obj["metadata"]["resourceVersion"]
                )
            line = json.dumps({"type": type_, "object": payload}, separators=(",", ":")) + "\n"
            await response.write(line.encode())

        def wanted(obj: Obj) -> bool:
            return labels(obj.get("metadata", {}).get("labels") or {}) and fields(obj)

        try:
            if since is None:
                await self.state.durable_for_readers()  # (pods created since the dispatch's)
                for obj in objects.list_kind(self.state, r.kind, now, self.started_at, namespace):
                    if wanted(obj):
                        await send("ADDED", obj)
            if initial:
                await send("BOOKMARK", {
                    "kind": r.kind, "apiVersion": r.api_version,
                    "metadata": {
                        "resourceVersion": str(self.state.resource_version),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                })  # fmt: skip
            for old in backlog:
                await self._send_change(old, send, wanted)
            last_rv = self.state.resource_version
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    change: Change | None = await asyncio.wait_for(
                        watcher.queue.get(), timeout=min(left, BOOKMARK_SECONDS)
                    )
                except TimeoutError:
                    if bookmarks:
                        mark = str(max(last_rv, self.state.resource_version))
                        await send("BOOKMARK", {
                            "kind": r.kind, "apiVersion": r.api_version,
                            "metadata": {"resourceVersion": mark},
                        })  # fmt: skip
                    continue
                if change is None:
                    break
                last_rv = change.rv
                await self._send_change(change, send, wanted)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.hub.release(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _stream_error(
        self, request: web.Request, error: errors.KubeError
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        line = json.dumps({"type": "ERROR", "object": error.status()}) + "\n"
        await response.write(line.encode())
        await response.write_eof()
        return response

    async def _send_change(self, change: Change, send: Any, wanted: Any) -> None:
        if change.type == "ADDED":
            # A new object shown survives the master (pods held until bound: ClusterState).
            await self.state.durable_for_readers()
        obj = objects.render(change.obj, self.clock.now(), self.state)
        obj["metadata"]["resourceVersion"] = str(change.rv)
        if wanted(obj):
            await send(change.type, obj)

    async def _watch_static(
        self, request: web.Request, r: Resource, namespace: str | None = None
    ) -> web.StreamResponse:
        """Derived kinds: the current objects, then the stream stays open until its timeout."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if request.query.get("resourceVersion", "") in ("", "0") or _flag(
            request, "sendInitialEvents"
        ):
            items = objects.list_kind(
                self.state, r.kind, self.clock.now(), self.started_at, namespace
            )
            for obj in self._selected(request, items):
                line = json.dumps({"type": "ADDED", "object": obj}) + "\n"
                await response.write(line.encode())
        if _flag(request, "sendInitialEvents"):
            mark = {
                "kind": r.kind,
                "apiVersion": r.api_version,
                "metadata": {
                    "resourceVersion": str(self.state.resource_version),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }
            await response.write((json.dumps({"type": "BOOKMARK", "object": mark}) + "\n").encode())
        timeout = request.query.get("timeoutSeconds", "")
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await asyncio.sleep(int(timeout) if timeout.isdigit() else DEFAULT_WATCH_SECONDS)
        return response

    def _leases(self, namespace: str | None) -> list[Obj]:
        raise NotImplementedError  # KubeApi's

    async def _watch_leases(
        self, request: web.Request, namespace: str | None
    ) -> web.StreamResponse:
        """Leases are computed (master/api/kube/leases.py): the current ones unless the
        client names a version, then what changed, looked at every WATCH_INTERVAL_S."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        table = wants_table(request.headers.get("Accept", ""))

        async def send(type_: str, obj: Obj) -> None:
            payload = obj
            if table and type_ != "BOOKMARK":
                payload = render_table("Lease", [obj], self.clock.now(),
                                       obj["metadata"]["resourceVersion"])  # fmt: skip
            line = json.dumps({"type": type_, "object": payload}, separators=(",", ":")) + "\n"
            await response.write(line.encode())

        initial = _flag(request, "sendInitialEvents")
        sent = {o["metadata"]["name"]: o for o in self._selected(request, self._leases(namespace))}
        if request.query.get("resourceVersion", "") in ("", "0") or initial:
            for obj in sent.values():
                await send("ADDED", obj)
        if initial:
            await send("BOOKMARK", {
                "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                "metadata": {
                    "resourceVersion": str(self.state.resource_version),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            })  # fmt: skip
        timeout = request.query.get("timeoutSeconds", "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (int(timeout) if timeout.isdigit() else DEFAULT_WATCH_SECONDS)
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            while (left := deadline - loop.time()) > 0:
                await asyncio.sleep(min(left, leases.WATCH_INTERVAL_S))
                now = self._selected(request, self._leases(namespace))
                for type_, obj in leases.changed_leases(sent, now):
                    await send(type_, obj)
                sent = {o["metadata"]["name"]: o for o in now}
            await response.write_eof()
        return response

    async def _log(
        self, request: web.Request, name: str, namespace: str = DEFAULT_NAMESPACE
    ) -> web.StreamResponse:
        """pods/NAME/log: the container's output, read by its agent over the node session."""
        try:
            query = replace(log_query(name, request.query), namespace=namespace)
            node, container = locate(self.state, name, query.container, namespace)
        except ValueError as e:
            raise errors.bad_request(str(e)) from None
        except LogRefused as e:
            if e.code == "not_found":
                raise errors.not_found("pods", "", name) from None
            raise errors.bad_request(e.message) from None
        if self.logs is None:
            raise errors.KubeError(503, "ServiceUnavailable", "this master relays no logs")
        chunks = self.logs.stream(node, replace(query, container=container))
        try:
            first = await anext(chunks, None)
        except LogUnavailable as e:
            raise errors.bad_request(str(e)) from None
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if first is not None:
                await response.write(first)
                async for data in chunks:
                    await response.write(data)
        except (LogUnavailable, ConnectionResetError):
            pass
        finally:
            await chunks.aclose()
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


def log_query(pod: str, query: Mapping[str, str]) -> LogQuery:
    """kubectl logs' query parameters; ValueError names a bad one."""

    def number(key: str, default: int) -> int:
        text = query.get(key, "")
        if not text:
            return default
        if not text.isdigit():
            raise ValueError(f"{key} must be a number >= 0, got {text[:30]!r}")
        return int(text)

    return LogQuery(
        pod=pod,
        container=query.get("container", ""),
        follow=query.get("follow", "").lower() in ("1", "true"),
        tail_lines=number("tailLines", -1),
        timestamps=query.get("timestamps", "").lower() in ("1", "true"),
        since_seconds=number("sinceSeconds", 0),
        limit_bytes=number("limitBytes", 0),
        previous=query.get("previous", "").lower() in ("1", "true"),
    )
