"""HTTP handlers of the Kubernetes API: routing, discovery, get/list, and writes.

Every resource URL goes through one dispatcher that splits the path the way
the API server does (`/api/v1[/namespaces/NS]/RESOURCE[/NAME[/SUBRESOURCE]]`,
`/apis/GROUP/v1/...`), finds the `Resource`, and calls the verb. Reads come
from the in-memory ClusterState (rendered as `pinnace get -o json` renders),
writes go through master/api/kube/writes.py to master/app, watches and logs
are streamed by master/api/kube/streams.py. Any refusal is a `KubeError`,
answered as a Status object.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from kernel.clock import Clock
from master.api.kube import (
    errors,
    leases,
    listing,
    metrics,
    objects,
    openapi,
    resources,
    writes,
)
from master.api.kube.eviction import evict
from master.api.kube.exec_ws import serve_exec
from master.api.kube.http import flag as _flag
from master.api.kube.http import json_response as _json
from master.api.kube.portforward import serve_port_forward
from master.api.kube.resources import Resource
from master.api.kube.streams import Streams
from master.api.kube.tables import render_table, wants_table
from master.api.kube.watch import WatchHub
from master.api.logs import LogRelay
from master.app.apply import ServiceAdmission
from master.app.delete import NodeLifecycle
from master.app.usage import UsageTable, node_usage, pod_containers_usage
from master.controllers.nodes import LeaseTable
from master.model import DEFAULT_NAMESPACE, Deployment, Node, Pod, StatefulSet, is_namespaced
from master.state import ClusterState

log = logging.getLogger(__name__)
Obj = dict[str, Any]

DEFAULT_WATCH_SECONDS = 1800
BOOKMARK_SECONDS = 15.0


class KubeApi(Streams):
    def __init__(
        self,
        state: ClusterState,
        lifecycle: NodeLifecycle,
        clock: Clock,
        server_address: str,
        logs: LogRelay | None = None,
        admit_services: ServiceAdmission | None = None,
        node_leases: LeaseTable | None = None,
        lease_seconds: float = 40.0,
        usage: UsageTable | None = None,
    ) -> None:
        # The agents' last CPU and memory readings (metrics.k8s.io, `kubectl top`).
        self.usage = usage if usage is not None else UsageTable()
        self.logs = logs
        self.node_leases = node_leases
        self.lease_seconds = lease_seconds
        self.admit_services = admit_services
        self.state = state
        self.lifecycle = lifecycle
        self.clock = clock
        self.server_address = server_address
        self.started_at = clock.now()
        self.hub = WatchHub(state)
        # Rendered objects of the lists, reused while the state holds the same object.
        self.rendered = listing.RenderedCache()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/version", self.version),
            web.get("/api", self.api),
            web.get("/apis", self.apis),
            web.get("/openapi/v2", self.openapi_v2),
            web.get("/openapi/v3", self.openapi_v3),
            web.get("/openapi/v3/{path:.+}", self.openapi_v3_doc),
            web.get("/healthz", self.healthz),
            web.get("/livez", self.healthz),
            web.get("/readyz", self.healthz),
            web.get("/api/v1", self.core_resources),
            web.get(f"/apis/{metrics.API_VERSION}", self.metrics_resources),
            web.route("*", f"/apis/{metrics.API_VERSION}/{{tail:.+}}", self.metrics),
            web.get("/apis/{group}", self.group),
            web.get("/apis/{group}/v1", self.group_resources),
            web.route("*", "/api/v1/{tail:.+}", self.core),
            web.route("*", "/apis/{group}/v1/{tail:.+}", self.grouped),
        ]

    # -- discovery -------------------------------------------------------------------

    async def version(self, request: web.Request) -> web.Response:
        return _json(resources.version_info())

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def api(self, request: web.Request) -> web.Response:
        return _json(resources.api_versions(self.server_address))

    async def apis(self, request: web.Request) -> web.Response:
        return _json(resources.api_group_list())

    async def core_resources(self, request: web.Request) -> web.Response:
        return _json(resources.core_resource_list())

    async def group(self, request: web.Request) -> web.Response:
        found = resources.api_group(request.match_info["group"])
        if found is None:
            raise errors.KubeError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return _json(found)

    async def group_resources(self, request: web.Request) -> web.Response:
        found = resources.resource_list(request.match_info["group"])
        if found is None:
            raise errors.KubeError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return _json(found)

    async def openapi_v2(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        if "protobuf" in accept and "json" not in accept:
            raise errors.KubeError(406, "NotAcceptable", "only application/json is served")
        return web.Response(body=openapi.v2_document(), content_type="application/json")

    async def openapi_v3(self, request: web.Request) -> web.Response:
        return _json(openapi.v3_index())

    async def openapi_v3_doc(self, request: web.Request) -> web.Response:
        doc = openapi.v3_document(request.match_info["path"])
        if doc is None:
            raise errors.KubeError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return web.Response(body=doc, content_type="application/json")

    # -- resource dispatch -----------------------------------------------------------

    async def core(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, "", request.match_info["tail"])

    async def grouped(self, request: web.Request) -> web.StreamResponse:
        group = request.match_info["group"]
        if group not in resources.GROUPS:
            raise errors.KubeError(
                404, "NotFound", "the server could not find the requested resource"
            )
        return await self._dispatch(request, group, request.match_info["tail"])

    async def _dispatch(self, request: web.Request, group: str, tail: str) -> web.StreamResponse:
        parts = [p for p in tail.split("/") if p]
        namespace: str | None = None
        if not group and parts[0] == "namespaces" and len(parts) <= 2:
            rest = parts
        elif parts[0] == "namespaces" and len(parts) >= 3:
            namespace, rest = parts[1], parts[2:]
        else:
            rest = parts
        if len(rest) > 3:
            raise errors.KubeError(
                404, "NotFound", "the server could not find the requested resource"
            )
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        r = resources.resource(group, f"{plural}/{sub}" if sub else plural)
        base = resources.resource(group, plural)
        if r is None or base is None:
            raise errors.KubeError(
                404, "NotFound", f"the server could not find the requested resource ({tail[:100]})"
            )
        if namespace is not None and not base.namespaced:
            raise errors.KubeError(
                404, "NotFound", "the server could not find the requested resource"
            )
        # Lists and watches without a namespace in the path span every namespace (as
        # /api/v1/pods does); one object without one is looked up in "default".
        scope = namespace if base.namespaced else None
        ns = namespace or DEFAULT_NAMESPACE
        method = request.method
        dry_run = request.query.get("dryRun") == "All"
        now = self.clock.now()
        w = writes.writer(
            request.query.get("fieldManager"),
            request.headers.get("User-Agent", ""),
            request.query.get("force"),
        )
        if method == "GET":
            # What is shown survives the master (pods held until bound: ClusterState).
            await self.state.durable_for_readers()
        if sub == "scale":
            return await self._scale(request, base, name or "", method, now, ns, w)
        if sub in ("exec", "attach") and method in ("GET", "POST"):
            execs = self.logs.execs if self.logs is not None else None
            return await serve_exec(request, self.state, execs, name or "", ns, sub == "attach")
        if sub == "portforward" and method in ("GET", "POST"):
            execs = self.logs.execs if self.logs is not None else None
            return await serve_port_forward(request, self.state, execs, name or "", ns)
        if sub == "eviction":
            if method != "POST":
                raise errors.method_not_allowed(f"{method} is not allowed on pods/eviction")
            body = await request.read()
            eviction = writes.decode_body(body, request.content_type) if body.strip() else {}
            out = await evict(self.state, self.lifecycle, name or "", ns, eviction, dry_run)
            return _json(out, 201)
        if sub in ("status", "log") and method != "GET":
            raise errors.method_not_allowed(f"{r.name} is read-only in pinnace")
        if sub == "log":
            return await self._log(request, name or "", ns)
        if name is None:
            if method == "GET":
                if _flag(request, "watch"):
                    return await self._watch(request, base, scope)
                return await self._list(request, base, scope)
            if method == "POST":
                result = await writes.create(
                    self.state, base, writes.decode_body(await request.read(),
                    request.content_type), namespace, now, dry_run, self.admit_services, w,
                )  # fmt: skip
                return self._written(result, request)
            raise errors.method_not_allowed(f"{method} is not allowed on {base.name}")
        if method == "GET":
            return self._get(request, base, name, ns)
        if method == "PUT":
            result = await writes.replace(
                self.state, base, name, writes.decode_body(await request.read(),
                request.content_type), namespace, now, dry_run, self.admit_services, w,
            )  # fmt: skip
            return self._written(result, request)
        if method == "PATCH":
            result = await writes.patch(
                self.state, base, name, await request.read(), request.content_type, now, dry_run,
                self.admit_services, ns, w,
            )  # fmt: skip
            return self._written(result, request)
        if method == "DELETE":
            body = await request.read()
            # kubectl's typed client (drain) sends its DeleteOptions as protobuf.
            options = writes.decode_body(body, request.content_type) if body.strip() else {}
            if not isinstance(options, dict):
                options = {}
            for key in ("propagationPolicy", "gracePeriodSeconds"):
                if key in request.query:
                    options[key] = request.query[key]
            dry_run = dry_run or "All" in (options.get("dryRun") or ())
            out = await writes.delete(
                self.state, self.lifecycle, base, name, options, now, dry_run, ns
            )
            return _json(out)
        raise errors.method_not_allowed(f"{method} is not allowed on {base.name}")

    def _written(self, result: writes.WriteResult, request: web.Request) -> web.Response:
        headers = {}
        if result.warnings:
            # One Warning header (RFC 7234 form, as the API server sends) per warning.
            headers["Warning"] = ", ".join(
                f'299 - "{w.replace(chr(34), chr(39))}"' for w in result.warnings[:20]
            )
        return _json(result.obj, 201 if result.created else 200, headers)

    # -- reads -----------------------------------------------------------------------

    def _leases(self, namespace: str | None) -> list[Obj]:
        """The nodes' Leases as of now (master/api/kube/leases.py)."""
        table = self.node_leases
        return leases.node_leases(
            (n for n in self.state.objects("Node") if isinstance(n, Node)),
            table.last_seen if table is not None else lambda _: None,
            table.lease_of if table is not None else lambda _: None,
            self.lease_seconds, self.clock.monotonic(), self.clock.now(),
            self.state.resource_version, namespace,
        )  # fmt: skip

    def _get(self, request: web.Request, r: Resource, name: str, namespace: str) -> web.Response:
        if r.kind == "Lease":
            obj = next((o for o in self._leases(namespace) if o["metadata"]["name"] == name), None)
        else:
            obj = objects.get_one(
                self.state, r.kind, name, self.clock.now(), self.started_at, namespace
            )
        if obj is None:
            raise errors.not_found(r.name, r.group, name)
        if wants_table(request.headers.get("Accept", "")):
            table = render_table(
                r.kind, [obj], self.clock.now(), obj["metadata"].get("resourceVersion", "")
            )
            return _json(table)
        return _json(obj)

    async def _list(self, request: web.Request, r: Resource, namespace: str | None) -> web.Response:
        """Every object of the resource in `namespace` (None: all namespaces).

        Stored kinds go through master/api/kube/listing.py: rendered objects reused from
        its cache, the rest rendered in chunks with yields to the loop between them."""
        now = self.clock.now()
        rv = str(self.state.resource_version)
        encoded: list[bytes] | None = None
        if r.kind == "Lease":
            items = self._leases(namespace)
        elif r.kind in objects.DERIVED_KINDS:
            items = objects.list_kind(self.state, r.kind, now, self.started_at, namespace)
        else:
            # The snapshot: taken before the first yield, with the resourceVersion above.
            stored = objects.stored_of_kind(self.state, r.kind, namespace)
            items, encoded = await listing.render_listed(
                stored, lambda o: objects.render(o, now, self.state), self.rendered
            )
            if namespace is None or not is_namespaced(r.kind):
                self.rendered.prune(r.kind, stored)
        query = request.query
        selecting = bool(query.get("labelSelector") or query.get("fieldSelector"))
        selected = self._selected(request, items) if selecting else items
        if encoded is not None and len(selected) != len(items):
            chosen = {id(o) for o in selected}
            encoded = [e for o, e in zip(items, encoded, strict=True) if id(o) in chosen]
        items = selected
        meta: Obj = {"resourceVersion": rv}
        start = 0
        cont = request.query.get("continue", "")
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start = int(token["start"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("the continue token is not valid") from None
        limit = request.query.get("limit", "")
        if limit.isdigit() and int(limit) > 0:
            end = start + int(limit)
            if end < len(items):
                token_text = json.dumps({"start": end, "rv": rv}).encode()
                meta["continue"] = base64.urlsafe_b64encode(token_text).decode()
                meta["remainingItemCount"] = len(items) - end
            items = items[start:end]
            encoded = encoded[start:end] if encoded is not None else None
        elif start:
            items = items[start:]
            encoded = encoded[start:] if encoded is not None else None
        if wants_table(request.headers.get("Accept", "")):
            if encoded is None:
                table = render_table(r.kind, items, now, rv)
                table["metadata"].update(meta)
                return _json(table)

            def table_of(some: Sequence[Obj]) -> Obj:
                part = render_table(r.kind, some, now, rv)
                part["metadata"].update(meta)
                return part

            body = await listing.encode_table(items, table_of)
            return web.Response(body=body, content_type="application/json")
        head = {"apiVersion": r.api_version, "kind": f"{r.kind}List", "metadata": meta}
        if encoded is not None:
            body = listing.encode_list(head, encoded)
            return web.Response(body=body, content_type="application/json")
        return _json({**head, "items": items})

    # -- metrics.k8s.io ----------------------------------------------------------------

    async def metrics_resources(self, request: web.Request) -> web.Response:
        return _json(metrics.resource_list())

    async def metrics(self, request: web.Request) -> web.Response:
        """NodeMetrics and PodMetrics (get, list; labelSelector, fieldSelector) from the
        agents' last usage reports: what `kubectl top` reads."""
        parts = [p for p in request.match_info["tail"].split("/") if p]
        namespace: str | None = None
        if len(parts) >= 3 and parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        if (
            not parts
            or len(parts) > 2
            or parts[0] not in ("nodes", "pods")
            or (parts[0] == "nodes" and namespace is not None)
        ):
            raise errors.KubeError(
                404, "NotFound", "the server could not find the requested resource"
            )
        if request.method != "GET" or _flag(request, "watch"):
            raise errors.method_not_allowed("metrics are read with get and list only")
        plural, name = parts[0], parts[1] if len(parts) == 2 else None
        reports = self.usage.reports
        if plural == "nodes":
            nodes = {n.meta.name: n for n in self.state.objects("Node") if isinstance(n, Node)}
            wanted = [nodes[name]] if name is not None and name in nodes else nodes.values()
            items = metrics.node_metrics(node_usage(reports, wanted), nodes)
            kind = "NodeMetrics"
        else:
            if name is not None:
                one = self.state.pod(name, namespace or DEFAULT_NAMESPACE)
                pods: list[Pod] = [one] if one is not None else []
            else:
                pods = self.state.pods(namespace)
            items = metrics.pod_metrics(pod_containers_usage(reports, pods))
            kind = "PodMetrics"
        if name is not None:
            if not items:
                raise errors.not_found(plural, metrics.GROUP, name)
            return _json(items[0])
        selecting = bool(request.query.get("labelSelector") or request.query.get("fieldSelector"))
        if selecting:
            items = self._selected(request, items)
        rv = str(self.state.resource_version)
        return _json(metrics.metrics_list(kind, items, rv))

    # -- watch -------------------------------------------------------------------------

    # -- subresources ---------------------------------------------------------------------

    async def _scale(
        self, request: web.Request, parent: Resource, name: str, method: str,
        now: float, namespace: str, w: writes.Writer,
    ) -> web.Response:  # fmt: skip
        """deployments/scale and statefulsets/scale (`parent` is which)."""
        if method == "GET":
            obj = self.state.get(parent.kind, name, namespace)
            if not isinstance(obj, (Deployment, StatefulSet)):
                raise errors.not_found(parent.name, parent.group, name)
            return _json(objects.scale(obj))
        if method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed(f"{method} is not allowed on {parent.name}/scale")
        out = await writes.set_scale(
            self.state, name, await request.read(), request.content_type, method, now, namespace,
            w, kind=parent.kind,
        )  # fmt: skip
        return _json(out)


@web.middleware
async def status_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn KubeErrors (and surprises) into Status answers."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except errors.KubeError as e:
        return _json(e.status(), e.code)
    except web.HTTPException as e:
        if e.status == 404:
            return _json(
                errors.KubeError(
                    404, "NotFound", "the server could not find the requested resource"
                ).status(),
                404,
            )
        if e.status == 405:
            return _json(
                errors.method_not_allowed(f"{request.method} is not allowed").status(), 405
            )
        raise
    except Exception:
        log.exception("HTTP API %s %s failed", request.method, request.path)
        return _json(
            errors.KubeError(
                500, "InternalError", "an internal error occurred; see the master's log"
            ).status(),
            500,
        )
