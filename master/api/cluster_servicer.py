"""The cluster API servicer: what `pinnace apply/get/delete/scale` call.

Thin by design: manifests are parsed and validated by master.manifest before
anything is touched (one bad document stores nothing); what apply, delete,
scale and rollback mean is decided by the transport-free use cases in
master.app, which also serve the Kubernetes HTTP API. This module converts
requests and replies and maps `AppError` codes onto gRPC status codes. Objects
are rendered by master.api.render. Every write is a ClusterState.commit:
planned against memory, made durable, then visible, before the call returns —
so an acknowledged write survives a master crash, and a write the store refused
(a full disk) answers INTERNAL, one sentence, with nothing changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from kernel.clock import Clock
from kernel.limits import MAX_MASTER_MESSAGE_BYTES
from master.api.exec import ExecRefused, ExecUnavailable, Exited, locate_exec
from master.api.fieldowners import cli_update
from master.api.logs import LogQuery, LogRefused, LogRelay, LogUnavailable, locate
from master.api.render import render_endpoints, render_ingress_class_list, render_object, rfc3339
from master.api.render_storage import render_storage_classes
from master.api.usage import usage_response
from master.app import paging
from master.app.apply import ServiceAdmission, apply_objects
from master.app.delete import delete_objects
from master.app.drain import cordon_node, drain_node
from master.app.errors import PLURALS, AppError, ErrorCode
from master.app.paging import check_reply_size, next_page
from master.app.podnetwork import network_of
from master.app.queries import check_kind, list_endpoints, list_objects
from master.app.scale import rollback_deployment, scale_deployment, scale_statefulset
from master.app.usage import UsageTable
from master.controllers.manager import ControllerManager
from master.manifest import ManifestError, ParsedManifests, parse_manifests, parse_references
from master.model import (
    DEFAULT_NAMESPACE,
    Deployment,
    StatefulSet,
    StoredObject,
    is_namespaced,
    key_of,
)
from master.state import ClusterState
from master.store.port import StoreError
from protos import cluster_pb2, cluster_pb2_grpc

log = logging.getLogger(__name__)

# The largest reply the master sends (as big as any client accepts).
REPLY_LIMIT = MAX_MASTER_MESSAGE_BYTES
# How many watch events may queue for one slow client before it is cut off.
WATCH_QUEUE_LIMIT = 10_000

T = TypeVar("T")

STATUS: dict[ErrorCode, grpc.StatusCode] = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "already_exists": grpc.StatusCode.ALREADY_EXISTS,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "internal": grpc.StatusCode.INTERNAL,
    "resource_exhausted": grpc.StatusCode.RESOURCE_EXHAUSTED,
    # INTERNAL: the CLI prints the master's sentence (UNAVAILABLE or DEADLINE_EXCEEDED would
    # read as "cannot reach the master", and a retrying client could repeat the change).
    "outcome_unknown": grpc.StatusCode.INTERNAL,
}


async def _call(context: grpc.aio.ServicerContext, work: Awaitable[T]) -> T:
    """Await a use case; its AppError becomes the matching gRPC status."""
    try:
        return await work
    except AppError as e:
        await _abort(context, e)


async def _abort(context: grpc.aio.ServicerContext, e: AppError) -> NoReturn:
    await context.abort(STATUS[e.code], e.message)
    raise e  # unreachable: abort raises


async def _parse(
    context: grpc.aio.ServicerContext, files: list[tuple[str, bytes]], namespace: str | None
) -> ParsedManifests:
    try:
        # Parsing big files is CPU work; keep the event loop (heartbeats) responsive.
        return await asyncio.to_thread(parse_manifests, files, namespace)
    except ManifestError as e:
        await _abort(context, AppError("invalid", str(e)))


# Kinds `delete -f` may name (the rest are made by the master).
DELETABLE = (
    "Deployment",
    "Service",
    "Pod",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Namespace",
    "StatefulSet",
    "PersistentVolumeClaim",
    "Ingress",
)


def _namespace(text: str) -> str:
    """A request's namespace: empty (an older client, or none given) means "default"."""
    return text or DEFAULT_NAMESPACE


def _result(kind: str, name: str, namespace: str, action: str) -> cluster_pb2.ObjectResult:
    ns = namespace if is_namespaced(kind) else ""
    return cluster_pb2.ObjectResult(kind=kind, name=name, action=action, namespace=ns)


def _whole_or_page(
    request: cluster_pb2.GetObjectsRequest,
    names: list[str],
    render: Callable[[int], cluster_pb2.ObjectJson],
) -> cluster_pb2.GetObjectsResponse:
    """The reply: one page of a paged request, or everything if it can be sent."""
    if request.paged:
        start, end, token = next_page(
            names, lambda i: render(i).ByteSize(), request.continue_token, paging.PAGE_BYTES
        )
        objects = [render(i) for i in range(start, end)]
        return cluster_pb2.GetObjectsResponse(objects=objects, continue_token=token)
    reply = cluster_pb2.GetObjectsResponse(objects=[render(i) for i in range(len(names))])
    check_reply_size(reply.ByteSize(), REPLY_LIMIT, PLURALS.get(request.kind, request.kind))
    return reply


def _grace(request: cluster_pb2.DeleteObjectsRequest) -> int | None:
    """--grace-period: unset or negative leaves each pod's own grace period."""
    if not request.HasField("grace_period_seconds") or request.grace_period_seconds < 0:
        return None
    return int(request.grace_period_seconds)


class ClusterServicer(cluster_pb2_grpc.ClusterServiceServicer):
    def __init__(
        self,
        state: ClusterState,
        manager: ControllerManager,
        clock: Clock,
        admit_services: ServiceAdmission | None = None,
        masters: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
        logs: LogRelay | None = None,
        usage: UsageTable | None = None,
    ) -> None:
        self._logs = logs if logs is not None else LogRelay()
        self._usage = usage if usage is not None else UsageTable()
        self._state = state
        self._manager = manager
        self._clock = clock
        self._started_at = clock.now()
        self._admit_services = admit_services
        # `get masters`: the masters sharing this cluster (master/ha/masters.py).
        self._masters = masters

    def _json(self, obj: StoredObject) -> cluster_pb2.ObjectJson:
        network = network_of(self._state) if obj.kind == "Pod" else None
        body = json.dumps(render_object(obj, self._clock.now(), network), separators=(",", ":"))
        ns = obj.meta.namespace if is_namespaced(obj.kind) else ""
        return cluster_pb2.ObjectJson(
            kind=obj.kind, name=obj.meta.name, json=body.encode(), namespace=ns
        )

    # -- apply -------------------------------------------------------------------------

    async def ApplyManifests(
        self, request: cluster_pb2.ApplyManifestsRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.ApplyManifestsResponse:
        files = [(f.name, f.content) for f in request.files]
        parsed = await _parse(context, files, request.namespace or None)
        if not parsed.objects and not parsed.warnings:
            await _abort(context, AppError("invalid", "no objects passed to apply"))
        applied = await _call(
            context,
            apply_objects(
                self._state,
                parsed.objects,
                self._clock.now(),
                request.dry_run,
                admit_services=self._admit_services,
                sources=parsed.sources,
                track=cli_update(self._clock.now()),
            ),
        )
        results = [
            _result(a.obj.kind, a.obj.meta.name, a.obj.meta.namespace, a.action) for a in applied
        ]
        return cluster_pb2.ApplyManifestsResponse(results=results, warnings=parsed.warnings)

    # -- get -----------------------------------------------------------------------------

    async def GetUsage(
        self, request: cluster_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.GetUsageResponse:
        return usage_response(self._usage, self._state)

    async def GetObjects(
        self, request: cluster_pb2.GetObjectsRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.GetObjectsResponse:
        # What is shown survives the master (pods held until bound: ClusterState).
        await self._state.durable_for_readers()
        try:
            if request.kind == "Master":
                return cluster_pb2.GetObjectsResponse(objects=await self._list_masters(request))
            if request.kind == "IngressClass":
                # The built-in class and the stored ones (render_ingress.py).
                docs = [
                    d
                    for d in render_ingress_class_list(
                        self._state.objects("IngressClass"), rfc3339(self._started_at)
                    )
                    if request.name in ("", d["metadata"]["name"])
                ]
                if not docs:
                    raise AppError("not_found", f'ingressclasses "{request.name[:253]}" not found')
                return cluster_pb2.GetObjectsResponse(
                    objects=[
                        cluster_pb2.ObjectJson(
                            kind="IngressClass",
                            name=d["metadata"]["name"],
                            json=json.dumps(d, separators=(",", ":")).encode(),
                        )
                        for d in docs
                    ]
                )
            if request.kind == "StorageClass":
                # Not stored: pinnace's built-in classes (render_storage.py).
                docs = [
                    d
                    for d in render_storage_classes(rfc3339(self._started_at))
                    if request.name in ("", d["metadata"]["name"])
                ]
                if not docs:
                    raise AppError("not_found", f'storageclasses "{request.name[:253]}" not found')
                return cluster_pb2.GetObjectsResponse(
                    objects=[
                        cluster_pb2.ObjectJson(
                            kind="StorageClass",
                            name=d["metadata"]["name"],
                            json=json.dumps(d, separators=(",", ":")).encode(),
                        )
                        for d in docs
                    ]
                )
            namespace = None if request.all_namespaces else _namespace(request.namespace)
            if request.kind == "Endpoints":
                objects = []
                for svc, ports in list_endpoints(self._state, request.name, namespace):
                    body = json.dumps(render_endpoints(svc, ports), separators=(",", ":"))
                    objects.append(
                        cluster_pb2.ObjectJson(
                            kind="Endpoints",
                            name=svc.meta.name,
                            json=body.encode(),
                            namespace=svc.meta.namespace,
                        )
                    )
                return _whole_or_page(request, [o.name for o in objects], objects.__getitem__)
            objs = list_objects(
                self._state, request.kind, request.name, dict(request.label_selector), namespace
            )
            rendered: dict[int, cluster_pb2.ObjectJson] = {}

            def render(i: int) -> cluster_pb2.ObjectJson:
                if i not in rendered:
                    rendered[i] = self._json(objs[i])
                return rendered[i]

            return _whole_or_page(request, [key_of(o) for o in objs], render)
        except AppError as e:
            await _abort(context, e)

    async def _list_masters(
        self, request: cluster_pb2.GetObjectsRequest
    ) -> list[cluster_pb2.ObjectJson]:
        if self._masters is None:
            return []
        try:
            docs = await self._masters()
        except StoreError as e:
            raise AppError("unavailable", f"cannot list the masters: {e}") from None
        if request.name:
            docs = [d for d in docs if d["metadata"]["name"] == request.name]
            if not docs:
                raise AppError("not_found", f'masters "{request.name[:253]}" not found')
        return [
            cluster_pb2.ObjectJson(
                kind="Master",
                name=d["metadata"]["name"],
                json=json.dumps(d, separators=(",", ":")).encode(),
            )
            for d in docs
        ]

    # -- delete ----------------------------------------------------------------------------

    async def DeleteObjects(
        self, request: cluster_pb2.DeleteObjectsRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.DeleteObjectsResponse:
        if request.files:
            # Only kind and name are read: an outdated file still deletes what it names.
            try:
                refs = await asyncio.to_thread(
                    parse_references,
                    [(f.name, f.content) for f in request.files],
                    DELETABLE,
                    request.namespace or None,
                )
            except ManifestError as e:
                await _abort(context, AppError("invalid", str(e)))
            targets: list[tuple[str, str, str]] = [(r.kind, r.name, r.namespace) for r in refs]
        else:
            targets = [(request.kind, request.name, _namespace(request.namespace))]
        deleted = await _call(
            context,
            delete_objects(
                self._state,
                self._manager,
                targets,
                missing_ok=bool(request.files),
                grace_seconds=_grace(request),
            ),
        )
        return cluster_pb2.DeleteObjectsResponse(
            results=[_result(d.kind, d.name, d.namespace, d.action) for d in deleted]
        )

    # -- scale -------------------------------------------------------------------------------

    async def ScaleDeployment(
        self, request: cluster_pb2.ScaleDeploymentRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.ScaleDeploymentResponse:
        ns = _namespace(request.namespace)
        now = self._clock.now()
        if request.kind == "StatefulSet":
            scaled: Deployment | StatefulSet = await _call(
                context,
                scale_statefulset(
                    self._state, request.name, int(request.replicas), ns, cli_update(now)
                ),
            )
        else:
            scaled = await _call(
                context,
                scale_deployment(
                    self._state, request.name, int(request.replicas), ns, cli_update(now)
                ),
            )
        return cluster_pb2.ScaleDeploymentResponse(
            result=_result(scaled.kind, scaled.meta.name, ns, "scaled")
        )

    # -- cordon and drain -----------------------------------------------------------------

    async def CordonNode(
        self, request: cluster_pb2.CordonNodeRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.CordonNodeResponse:
        changed = await _call(
            context, cordon_node(self._state, request.name, bool(request.unschedulable))
        )
        return cluster_pb2.CordonNodeResponse(changed=changed)

    async def DrainNode(
        self, request: cluster_pb2.DrainNodeRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.DrainNodeResponse:
        plan = await _call(context, drain_node(self._state, self._manager, request.name))
        return cluster_pb2.DrainNodeResponse(
            evicted=plan.evict,
            waiting=[cluster_pb2.PodWait(pod=w.pod, reason=w.reason) for w in plan.waiting],
            blocked=[cluster_pb2.PodWait(pod=w.pod, reason=w.reason) for w in plan.blocked],
            terminating=plan.terminating,
        )

    # -- rollback ------------------------------------------------------------------------

    async def RollbackDeployment(
        self, request: cluster_pb2.RollbackDeploymentRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.RollbackDeploymentResponse:
        dep = await _call(
            context,
            rollback_deployment(
                self._state,
                request.name,
                int(request.to_revision),
                self._clock.now(),
                _namespace(request.namespace),
                cli_update(self._clock.now()),
            ),
        )
        return cluster_pb2.RollbackDeploymentResponse(
            result=_result("Deployment", dep.meta.name, dep.meta.namespace, "rolled back"),
            revision=dep.revision,
        )

    # -- watch ---------------------------------------------------------------------------------

    async def WatchObjects(
        self, request: cluster_pb2.WatchObjectsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[cluster_pb2.WatchObjectsResponse]:
        try:
            check_kind(request.kind)
        except AppError as e:
            await _abort(context, e)
        # What is shown survives the master (pods held until bound: ClusterState); before
        # the subscription, so the snapshot and the queue do not overlap.
        await self._state.durable_for_readers()
        # (ADDED | MODIFIED | DELETED, object): told by the change's previous version.
        queue: asyncio.Queue[tuple[str, StoredObject] | None] = asyncio.Queue()
        namespace = None if request.all_namespaces else _namespace(request.namespace)
        if not is_namespaced(request.kind):
            namespace = None

        def listener(
            kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
        ) -> None:
            if kind != request.kind:
                return
            if namespace is not None and obj.meta.namespace != namespace:
                return
            if queue.qsize() >= WATCH_QUEUE_LIMIT:
                queue.put_nowait(None)  # too slow: end the stream; the client re-lists
                return
            type_ = "DELETED" if deleted else "ADDED" if previous is None else "MODIFIED"
            queue.put_nowait((type_, obj))

        unsubscribe = self._state.subscribe(listener)
        current = self._state.objects(request.kind, namespace)
        try:
            if request.resource_version == 0:
                for obj in current:
                    yield cluster_pb2.WatchObjectsResponse(
                        type="ADDED",
                        object=self._json(obj),
                        resource_version=obj.meta.resource_version,
                    )
            while True:
                item = await queue.get()
                if item is None:
                    return
                type_, obj = item
                if type_ != "DELETED" and obj.meta.resource_version <= request.resource_version:
                    continue
                if type_ == "ADDED":
                    await self._state.durable_for_readers()
                yield cluster_pb2.WatchObjectsResponse(
                    type=type_, object=self._json(obj), resource_version=obj.meta.resource_version
                )
        finally:
            unsubscribe()

    # -- exec ----------------------------------------------------------------------------

    async def Exec(
        self,
        request_iterator: AsyncIterator[cluster_pb2.ExecRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[cluster_pb2.ExecResponse]:
        """`pinnace exec`: the same rules and relay as the Kubernetes API's pods/NAME/exec."""
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("open"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "an exec starts with open")
            return
        o = first.open
        if not o.command and not o.attach:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "give the command after --, e.g. -- sh -c 'ls'"
            )
        try:
            ns = _namespace(o.namespace)
            node, container = locate_exec(self._state, o.pod, o.container, ns)
            channel = self._logs.execs.open(
                node, o.pod, container, list(o.command), o.stdin, o.tty, o.width, o.height, ns,
                attach=o.attach,
            )  # fmt: skip
        except ExecRefused as e:
            code = (
                grpc.StatusCode.NOT_FOUND
                if e.code == "not_found"
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            await context.abort(code, e.message)
            return
        except ExecUnavailable as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
            return

        async def pass_input() -> None:
            try:
                async for message in request_iterator:
                    if message.stdin and o.stdin:
                        await channel.stdin(message.stdin)
                    if message.close_stdin:
                        channel.close_stdin()
                    channel.resize(message.width, message.height)
            except (grpc.RpcError, asyncio.CancelledError):
                channel.client_gone()

        reader = asyncio.create_task(pass_input())
        error = ""
        try:
            while True:
                event = await channel.next()
                if isinstance(event, Exited):
                    if event.error:
                        error = event.error
                        break
                    yield cluster_pb2.ExecResponse(exited=True, exit_code=event.code)
                    break
                yield cluster_pb2.ExecResponse(stream=event.stream, data=event.data)
        finally:
            reader.cancel()
            channel.close()
        if error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, error)

    # -- logs ----------------------------------------------------------------------------

    async def StreamLogs(
        self, request: cluster_pb2.StreamLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[cluster_pb2.StreamLogsResponse]:
        """`pinnace logs`: the same rules and relay as the Kubernetes API's pods/NAME/log."""
        try:
            node, container = locate(
                self._state, request.pod, request.container, _namespace(request.namespace)
            )
        except LogRefused as e:
            code = (
                grpc.StatusCode.NOT_FOUND
                if e.code == "not_found"
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            await context.abort(code, e.message)
        query = LogQuery(
            pod=request.pod,
            container=container,
            follow=request.follow,
            tail_lines=int(request.tail_lines),
            timestamps=request.timestamps,
            previous=request.previous,
            namespace=_namespace(request.namespace),
        )
        try:
            async for data in self._logs.stream(node, query):
                yield cluster_pb2.StreamLogsResponse(data=data)
        except LogUnavailable as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
