"""The cluster API servicer: what `pinnace apply/get/delete/scale` call.

Thin by design: manifests are parsed and validated by master.manifest before
anything is touched (one bad document stores nothing), objects are rendered by
master.api.render, and every write is flushed to the store before the call
returns, so an acknowledged apply survives a master crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc

from master.api.render import render_endpoints, render_object
from master.clock import Clock
from master.controllers.endpoints import compute_lb_services
from master.controllers.manager import ControllerManager
from master.controllers.revisions import (
    CHANGE_CAUSE,
    RollbackError,
    record_revision,
    rollback_template,
)
from master.manifest import ManifestError, parse_manifests, parse_references
from master.model import KINDS, Deployment, Node, Service, StoredObject, selector_matches
from master.state import ClusterState
from protos import cluster_pb2, cluster_pb2_grpc

log = logging.getLogger(__name__)

# How many watch events may queue for one slow client before it is cut off.
WATCH_QUEUE_LIMIT = 10_000
_PLURAL = {
    "Deployment": "deployments",
    "Service": "services",
    "Pod": "pods",
    "Node": "nodes",
    "Event": "events",
}


# Kinds `delete -f` may name (the rest are made by the master).
DELETABLE = ("Deployment", "Service", "Pod")


def _same_desired_state(old: StoredObject, new: StoredObject) -> bool:
    """True when applying `new` over `old` would change nothing the user declared."""
    if old.meta.labels != new.meta.labels or old.meta.annotations != new.meta.annotations:
        return False
    if isinstance(old, Deployment) and isinstance(new, Deployment):
        return (old.replicas, old.selector, old.template, old.strategy, old.rolling_update) == (
            new.replicas,
            new.selector,
            new.template,
            new.strategy,
            new.rolling_update,
        )
    if isinstance(old, Service) and isinstance(new, Service):
        return (old.selector, old.ports, old.type, old.headless) == (
            new.selector,
            new.ports,
            new.type,
            new.headless,
        )
    return False


class ClusterServicer(cluster_pb2_grpc.ClusterServiceServicer):
    def __init__(self, state: ClusterState, manager: ControllerManager, clock: Clock) -> None:
        self._state = state
        self._manager = manager
        self._clock = clock

    def _json(self, obj: StoredObject) -> cluster_pb2.ObjectJson:
        body = json.dumps(render_object(obj, self._clock.now()), separators=(",", ":"))
        return cluster_pb2.ObjectJson(kind=obj.kind, name=obj.meta.name, json=body.encode())

    async def _check_kind(self, kind: str, context: grpc.aio.ServicerContext) -> None:
        if kind not in KINDS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown kind {kind[:60]!r}; known kinds: {', '.join(sorted(KINDS))}",
            )

    # -- apply -------------------------------------------------------------------------

    async def ApplyManifests(
        self, request: cluster_pb2.ApplyManifestsRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.ApplyManifestsResponse:
        try:
            # Parsing big files is CPU work; keep the event loop (heartbeats) responsive.
            parsed = await asyncio.to_thread(
                parse_manifests, [(f.name, f.content) for f in request.files]
            )
        except ManifestError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise  # unreachable: abort raises
        if not parsed.objects and not parsed.warnings:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no objects passed to apply")
        planned: list[tuple[StoredObject, str]] = []
        for obj in parsed.objects:
            existing = self._state.get(obj.kind, obj.meta.name)
            if existing is None:
                planned.append((self._with_history(obj, None), "created"))
                continue
            if (
                isinstance(existing, Deployment)
                and isinstance(obj, Deployment)
                and existing.selector != obj.selector
            ):
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"deployment {obj.meta.name}: spec.selector: field is immutable "
                    f"(delete the deployment first to change it)",
                )
            if _same_desired_state(existing, obj):
                planned.append((existing, "unchanged"))
                continue
            merged = self._with_history(self._merge(existing, obj), existing)
            planned.append((merged, "configured"))
        results = []
        for planned_obj, action in planned:
            if action != "unchanged" and not request.dry_run:
                self._state.put(planned_obj)
            results.append(
                cluster_pb2.ObjectResult(
                    kind=planned_obj.kind, name=planned_obj.meta.name, action=action
                )
            )
        await self._state.flush()
        return cluster_pb2.ApplyManifestsResponse(results=results, warnings=parsed.warnings)

    def _with_history(self, obj: StoredObject, existing: StoredObject | None) -> StoredObject:
        """A deployment's rollout history with its (possibly new) template recorded."""
        if not isinstance(obj, Deployment):
            return obj
        history = existing.history if isinstance(existing, Deployment) else ()
        cause = obj.meta.annotations.get(CHANGE_CAUSE, "")
        return replace(
            obj, history=record_revision(history, obj.template, self._clock.now(), cause)
        )

    @staticmethod
    def _merge(existing: StoredObject, new: StoredObject) -> StoredObject:
        """The new desired state with the existing identity, generation and status."""
        meta = replace(
            new.meta,
            uid=existing.meta.uid,
            created_at=existing.meta.created_at,
            generation=existing.meta.generation + 1,
        )
        if isinstance(existing, Deployment) and isinstance(new, Deployment):
            return replace(new, meta=meta, status=existing.status)
        if isinstance(existing, Service) and isinstance(new, Service):
            same_ip = existing.headless == new.headless
            return replace(
                new,
                meta=meta,
                ingress_ip=existing.ingress_ip,
                cluster_ip=existing.cluster_ip if same_ip else "",
            )
        return replace(new, meta=meta)

    # -- get -----------------------------------------------------------------------------

    async def GetObjects(
        self, request: cluster_pb2.GetObjectsRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.GetObjectsResponse:
        if request.kind == "Endpoints":
            return await self._get_endpoints(request, context)
        await self._check_kind(request.kind, context)
        if request.name:
            obj = self._state.get(request.kind, request.name)
            if obj is None:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f'{_PLURAL[request.kind]} "{request.name[:253]}" not found',
                )
            objs = [obj] if obj is not None else []
        else:
            objs = self._state.objects(request.kind)
        selector = dict(request.label_selector)
        if selector:
            objs = [o for o in objs if selector_matches(selector, o.meta.labels)]
        if request.kind != "Event":
            objs.sort(key=lambda o: o.meta.name)
        return cluster_pb2.GetObjectsResponse(objects=[self._json(o) for o in objs])

    async def _get_endpoints(
        self, request: cluster_pb2.GetObjectsRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.GetObjectsResponse:
        """Endpoints are derived, not stored: each service's pods as the LB sees them."""
        services = [s for s in self._state.objects("Service") if isinstance(s, Service)]
        if request.name:
            services = [s for s in services if s.meta.name == request.name]
            if not services:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND, f'endpoints "{request.name[:253]}" not found'
                )
        nodes = {
            n.meta.name: n.status.ready for n in self._state.objects("Node") if isinstance(n, Node)
        }
        lb = compute_lb_services(services, self._state.pods(), nodes, include_headless=True)
        objects = []
        for svc in sorted(services, key=lambda s: s.meta.name):
            ports = [p for p in lb if p.name == svc.meta.name]
            body = json.dumps(render_endpoints(svc, ports), separators=(",", ":"))
            objects.append(
                cluster_pb2.ObjectJson(kind="Endpoints", name=svc.meta.name, json=body.encode())
            )
        return cluster_pb2.GetObjectsResponse(objects=objects)

    # -- delete ----------------------------------------------------------------------------

    async def DeleteObjects(
        self, request: cluster_pb2.DeleteObjectsRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.DeleteObjectsResponse:
        targets: list[tuple[str, str]] = []
        if request.files:
            try:
                refs = await asyncio.to_thread(
                    parse_references, [(f.name, f.content) for f in request.files], DELETABLE
                )
            except ManifestError as e:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
                raise
            targets = [(r.kind, r.name) for r in refs]
        else:
            await self._check_kind(request.kind, context)
            targets = [(request.kind, request.name)]
        missing = [f'{_PLURAL[k]} "{n}"' for k, n in targets if self._state.get(k, n) is None]
        if missing and not request.files:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{missing[0]} not found")
        results = []
        for kind, name in targets:
            if self._state.get(kind, name) is None:
                results.append(cluster_pb2.ObjectResult(kind=kind, name=name, action="not found"))
                continue
            self._delete(kind, name)
            results.append(cluster_pb2.ObjectResult(kind=kind, name=name, action="deleted"))
        await self._state.flush()
        return cluster_pb2.DeleteObjectsResponse(results=results)

    def _delete(self, kind: str, name: str) -> None:
        if kind == "Pod":
            self._manager.delete_pod(name, "Killing", f"pod {name} deleted by a user")
        elif kind == "Node":
            self._manager.forget_node(name)
        else:
            self._state.remove(kind, name)
            self._state.record_event(kind, name, "Deleted", f"{kind.lower()} {name} deleted")

    async def _deployment(self, name: str, context: grpc.aio.ServicerContext) -> Deployment:
        dep = self._state.get("Deployment", name)
        if not isinstance(dep, Deployment):
            await context.abort(grpc.StatusCode.NOT_FOUND, f'deployments "{name[:253]}" not found')
            raise AssertionError  # unreachable: abort raises
        return dep

    # -- scale -------------------------------------------------------------------------------

    async def ScaleDeployment(
        self, request: cluster_pb2.ScaleDeploymentRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.ScaleDeploymentResponse:
        dep = await self._deployment(request.name, context)
        if not 0 <= request.replicas <= 10_000:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"--replicas must be between 0 and 10000, got {request.replicas}",
            )
        if dep.replicas != request.replicas:
            meta = replace(dep.meta, generation=dep.meta.generation + 1)
            self._state.put(replace(dep, meta=meta, replicas=int(request.replicas)))
            await self._state.flush()
        return cluster_pb2.ScaleDeploymentResponse(
            result=cluster_pb2.ObjectResult(kind="Deployment", name=dep.meta.name, action="scaled")
        )

    # -- rollback ------------------------------------------------------------------------

    async def RollbackDeployment(
        self, request: cluster_pb2.RollbackDeploymentRequest, context: grpc.aio.ServicerContext
    ) -> cluster_pb2.RollbackDeploymentResponse:
        dep = await self._deployment(request.name, context)
        try:
            template = rollback_template(dep, int(request.to_revision))
        except RollbackError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
            raise
        history = record_revision(dep.history, template, self._clock.now(), "rollout undo")
        meta = replace(dep.meta, generation=dep.meta.generation + 1)
        rolled = self._state.put(replace(dep, meta=meta, template=template, history=history))
        self._state.record_event(
            "Deployment",
            dep.meta.name,
            "RolledBack",
            f"rolled back to the template of an earlier revision, now revision {rolled.revision}",
        )
        await self._state.flush()
        return cluster_pb2.RollbackDeploymentResponse(
            result=cluster_pb2.ObjectResult(
                kind="Deployment", name=dep.meta.name, action="rolled back"
            ),
            revision=rolled.revision,
        )

    # -- watch ---------------------------------------------------------------------------------

    async def WatchObjects(
        self, request: cluster_pb2.WatchObjectsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[cluster_pb2.WatchObjectsResponse]:
        await self._check_kind(request.kind, context)
        queue: asyncio.Queue[tuple[bool, StoredObject] | None] = asyncio.Queue()

        def listener(kind: str, obj: StoredObject, deleted: bool) -> None:
            if kind != request.kind:
                return
            if queue.qsize() >= WATCH_QUEUE_LIMIT:
                queue.put_nowait(None)  # too slow: end the stream; the client re-lists
                return
            queue.put_nowait((deleted, obj))

        unsubscribe = self._state.subscribe(listener)
        # Names this stream has reported, to tell ADDED from MODIFIED.
        known = {o.meta.name for o in self._state.objects(request.kind)}
        try:
            if request.resource_version == 0:
                for obj in self._state.objects(request.kind):
                    yield cluster_pb2.WatchObjectsResponse(
                        type="ADDED",
                        object=self._json(obj),
                        resource_version=obj.meta.resource_version,
                    )
            while True:
                item = await queue.get()
                if item is None:
                    return
                deleted, obj = item
                name = obj.meta.name
                if deleted:
                    type_ = "DELETED"
                    known.discard(name)
                else:
                    type_ = "MODIFIED" if name in known else "ADDED"
                    known.add(name)
                if not deleted and obj.meta.resource_version <= request.resource_version:
                    continue
                yield cluster_pb2.WatchObjectsResponse(
                    type=type_, object=self._json(obj), resource_version=obj.meta.resource_version
                )
        finally:
            unsubscribe()
