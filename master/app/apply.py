"""Apply: what storing a set of parsed objects means, for every API edge.

`plan_apply` (pure) decides, object by object against what is stored: new
objects are `created`; objects whose declared state did not change are
`unchanged` (nothing is written, no generation bump, no rollout); changed ones
are `configured` by merging the new desired state into the stored identity
(uid, creation time, generation + 1) and status. A deployment's selector is
immutable, as in Kubernetes, and its rollout history records each new pod
template. The whole batch is decided before anything is written, so one refused
object stores nothing.

`apply_objects` runs the plan as one ClusterState commit: planned against
memory, made durable, then visible; the caller answers only after that, and a
refusal or a store failure leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from master.app.clusterip import ClusterIpError, assign_cluster_ip, taken_addresses
from master.app.errors import AppError, commit
from master.app.namespaces import check_namespaces
from master.app.nodeport import NodePortError, assign_node_ports, taken_node_ports
from master.controllers.revisions import CHANGE_CAUSE, record_revision
from master.manifest.quantities import format_memory
from master.model import (
    ConfigMap,
    Deployment,
    Ingress,
    Namespace,
    PersistentVolumeClaim,
    Secret,
    Service,
    ServiceAccount,
    ServicePort,
    StatefulSet,
    StoredObject,
)
from master.state import ClusterState

ApplyAction = Literal["created", "configured", "unchanged"]
# (kind, name, namespace) -> the stored object (ClusterState.get).
Lookup = Callable[[str, str, str], StoredObject | None]
# The load balancer's word on ports: (Services being applied, Services stored) -> one
# sentence per Service it could not serve (see master/lb/conflicts.py).
ServiceAdmission = Callable[[Sequence[Service], Sequence[Service]], list[str]]
# Records who changed which fields (metadata.managedFields): given the stored object
# (None when it is being created) and the object about to be stored, returns the latter
# with its ledger, or raises to refuse the write (server-side apply's conflicts). The API
# edges supply it: they know the manager and how objects look on the wire.
FieldTracker = Callable[[StoredObject | None, StoredObject], StoredObject]


@dataclass(frozen=True, slots=True)
class Applied:
    """One object of an apply and what happened to it (the stored object when written)."""

    obj: StoredObject
    action: ApplyAction


def same_desired_state(old: StoredObject, new: StoredObject) -> bool:
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
        # An empty clusterIP asks for nothing: the stored one stays.
        same_ip = new.cluster_ip in ("", old.cluster_ip)
        return same_ip and (
            old.selector,
            old.ports,
            old.type,
            old.headless,
            old.load_balancer_ip,
            old.allocate_node_ports is not False,
        ) == (
            new.selector,
            _kept_node_ports(old, new),
            new.type,
            new.headless,
            new.load_balancer_ip,
            new.allocate_node_ports is not False,
        )
    if isinstance(old, ConfigMap) and isinstance(new, ConfigMap):
        return (old.data, old.binary_data, old.immutable) == (
            new.data,
            new.binary_data,
            new.immutable,
        )
    if isinstance(old, Secret) and isinstance(new, Secret):
        return (old.type, old.data, old.immutable) == (new.type, new.data, new.immutable)
    if isinstance(old, PersistentVolumeClaim) and isinstance(new, PersistentVolumeClaim):
        return _claim_spec(old) == _claim_spec(new)
    if isinstance(old, StatefulSet) and isinstance(new, StatefulSet):
        return replace(old, meta=new.meta, status=new.status) == new
    if isinstance(old, Ingress) and isinstance(new, Ingress):
        return _ingress_spec(old) == _ingress_spec(new)
    if isinstance(old, Namespace) and isinstance(new, Namespace):
        return True
    return isinstance(old, ServiceAccount) and isinstance(new, ServiceAccount)


def _kept_node_ports(old: Service, new: Service) -> tuple[ServicePort, ...]:
    """`new`'s ports, each without a nodePort taking the stored one of the same port (an
    empty nodePort asks for nothing, as an empty clusterIP does)."""
    stored = {(p.port, p.protocol): p.node_port for p in old.ports}
    return tuple(
        p if p.node_port else replace(p, node_port=stored.get((p.port, p.protocol), 0))
        for p in new.ports
    )


def merge(existing: StoredObject, new: StoredObject) -> StoredObject:
    """The new desired state with the existing identity, generation and status."""
    meta = replace(
        new.meta,
        uid=existing.meta.uid,
        created_at=existing.meta.created_at,
        generation=existing.meta.generation + 1,
        managed_fields=existing.meta.managed_fields,
    )
    if isinstance(existing, Deployment) and isinstance(new, Deployment):
        return replace(new, meta=meta, status=existing.status)
    if isinstance(existing, Service) and isinstance(new, Service):
        # The load balancer's status stays until it decides anew; the cluster IP is
        # decided by assign_cluster_ips (what the manifest asks for, else the stored one).
        return replace(
            new,
            meta=meta,
            ingress_ip=existing.ingress_ip,
            lb_reason=existing.lb_reason,
            lb_message=existing.lb_message,
            lb_since=existing.lb_since,
            proxy_problems=existing.proxy_problems,
        )
    if isinstance(existing, PersistentVolumeClaim) and isinstance(new, PersistentVolumeClaim):
        return replace(
            new,
            meta=meta,
            volume_name=existing.volume_name,
            node_name=existing.node_name,
            used_bytes=existing.used_bytes,
            capacity_bytes=existing.capacity_bytes,
        )
    if isinstance(existing, Ingress) and isinstance(new, Ingress):
        # The load balancer's status stays until it decides anew.
        return replace(
            new,
            meta=meta,
            address=existing.address,
            ports=existing.ports,
            lb_reason=existing.lb_reason,
            lb_message=existing.lb_message,
        )
    if isinstance(existing, Namespace) and isinstance(new, Namespace):
        # Labels may change; a Terminating namespace stays Terminating.
        return replace(
            new,
            meta=meta,
            phase=existing.phase,
            deletion_requested_at=existing.deletion_requested_at,
        )
    return replace(new, meta=meta)


def _ingress_spec(i: Ingress) -> tuple[object, ...]:
    return (i.class_name, i.default_backend, i.rules, i.tls)


def _claim_spec(c: PersistentVolumeClaim) -> tuple[object, ...]:
    return (c.access_modes, c.storage_bytes, c.storage_class, c.volume_mode)


def _check_claim_update(existing: PersistentVolumeClaim, new: PersistentVolumeClaim) -> None:
    """A claim may grow (its storage classes allow volume expansion: the node grows the
    filesystem); it never shrinks, and the rest of its spec is fixed."""
    name = new.meta.name
    if new.storage_bytes < existing.storage_bytes:
        raise AppError(
            "invalid",
            f"persistentvolumeclaim {name}: spec.resources.requests.storage: cannot shrink "
            f"from {format_memory(existing.storage_bytes)} to "
            f"{format_memory(new.storage_bytes)}; a claim can only grow",
        )
    if _claim_spec(replace(new, storage_bytes=existing.storage_bytes)) != _claim_spec(existing):
        raise AppError(
            "invalid",
            f"persistentvolumeclaim {name}: spec is immutable after creation except "
            f"resources.requests.storage, which may grow (delete the claim to change the rest)",
        )


def with_history(obj: StoredObject, existing: StoredObject | None, now: float) -> StoredObject:
    """A deployment with its (possibly new) template recorded in its rollout history."""
    if not isinstance(obj, Deployment):
        return obj
    history = existing.history if isinstance(existing, Deployment) else ()
    cause = obj.meta.annotations.get(CHANGE_CAUSE, "")
    return replace(obj, history=record_revision(history, obj.template, now, cause))


def check_immutable(existing: StoredObject, new: StoredObject) -> None:
    """Refuse changes Kubernetes refuses on update."""
    if isinstance(existing, ConfigMap | Secret) and existing.immutable:
        same = False
        if isinstance(existing, ConfigMap) and isinstance(new, ConfigMap):
            same = new.immutable and (existing.data, existing.binary_data) == (
                new.data,
                new.binary_data,
            )
        elif isinstance(existing, Secret) and isinstance(new, Secret):
            same = new.immutable and (existing.type, existing.data) == (new.type, new.data)
        if not same:
            raise AppError(
                "invalid",
                f"{existing.kind.lower()} {new.meta.name}: field is immutable when "
                f"`immutable` is set (delete it first to change it)",
            )
    if isinstance(existing, PersistentVolumeClaim) and isinstance(new, PersistentVolumeClaim):
        _check_claim_update(existing, new)
    if isinstance(existing, StatefulSet) and isinstance(new, StatefulSet):
        fixed = ("selector", "service_name", "pod_management_policy", "claim_templates")
        changed = [f for f in fixed if getattr(existing, f) != getattr(new, f)]
        if changed:
            raise AppError(
                "invalid",
                f"statefulset {new.meta.name}: spec: updates to statefulset spec for fields "
                f"other than 'replicas', 'template', 'updateStrategy' and "
                f"'persistentVolumeClaimRetentionPolicy' are forbidden (delete it first)",
            )
    if (
        isinstance(existing, Deployment)
        and isinstance(new, Deployment)
        and existing.selector != new.selector
    ):
        raise AppError(
            "invalid",
            f"deployment {new.meta.name}: spec.selector: field is immutable "
            f"(delete the deployment first to change it)",
        )


def plan_apply(
    objects: Sequence[StoredObject], lookup: Lookup, now: float, create_only: bool = False
) -> list[Applied]:
    """What applying `objects` does to each (pure); raises AppError for the first refusal.

    `create_only` is Kubernetes' create (POST): an object that exists is a conflict.
    """
    planned: list[Applied] = []
    for obj in objects:
        existing = lookup(obj.kind, obj.meta.name, obj.meta.namespace)
        if existing is None:
            planned.append(Applied(with_history(obj, None, now), "created"))
            continue
        if create_only:
            raise AppError(
                "already_exists", f'{obj.kind.lower()}s "{obj.meta.name}" already exists'
            )
        check_immutable(existing, obj)
        if same_desired_state(existing, obj):
            planned.append(Applied(existing, "unchanged"))
            continue
        planned.append(Applied(with_history(merge(existing, obj), existing, now), "configured"))
    return planned


async def apply_objects(
    state: ClusterState,
    objects: Sequence[StoredObject],
    now: float,
    dry_run: bool = False,
    create_only: bool = False,
    admit_services: ServiceAdmission | None = None,
    sources: Sequence[str] = (),
    track: FieldTracker | None = None,
) -> list[Applied]:
    """Apply parsed objects; returns each with its action once the write is durable.

    Written objects come back as stored (with their resource version); with
    `dry_run` nothing is written and the planned objects come back. A Service
    `admit_services` refuses (a port another Service holds) refuses the whole apply, so
    does an object whose namespace does not exist (`sources[i]`: where objects[i] is
    from, for the message).
    """

    def plan() -> list[Applied]:
        check_namespaces(objects, state.get, sources)
        services = [o for o in objects if isinstance(o, Service)]
        if admit_services is not None and services:
            # Ports and addresses are the cluster's, whichever namespace holds them.
            stored = [s for s in state.objects("Service") if isinstance(s, Service)]
            errors = admit_services(services, stored)
            if errors:
                raise AppError("invalid", errors[0])
        planned = assign_cluster_ips(plan_apply(objects, state.get, now, create_only), state)
        if track is not None:
            planned = [_tracked(p, state, track) for p in planned]
        if dry_run:
            return planned
        return [_write(p, state) for p in planned]

    return await commit(state, plan)


def assign_cluster_ips(planned: list[Applied], state: ClusterState) -> list[Applied]:
    """`planned` with every created or configured Service given its cluster IP and node
    ports; one sentence (AppError) for the first that cannot have what it asks for."""
    services = [s for s in state.objects("Service") if isinstance(s, Service)]
    applying = {
        (p.obj.meta.namespace, p.obj.meta.name) for p in planned if isinstance(p.obj, Service)
    }
    # The range is the cluster's: every namespace's Services share it.
    others = [s for s in services if (s.meta.namespace, s.meta.name) not in applying]
    taken = taken_addresses(others, state.service_cidr)
    ports_taken = taken_node_ports(others)
    result = []
    for p in planned:
        obj = p.obj
        if isinstance(obj, Service) and p.action != "unchanged":
            previous = state.get("Service", obj.meta.name, obj.meta.namespace)
            try:
                obj = assign_cluster_ip(
                    obj,
                    previous if isinstance(previous, Service) else None,
                    taken,
                    state.service_cidr,
                )
                obj = assign_node_ports(
                    obj,
                    previous if isinstance(previous, Service) else None,
                    ports_taken,
                    state.node_port_range,
                )
            except (ClusterIpError, NodePortError) as e:
                raise AppError("invalid", str(e)) from None
            p = Applied(obj, p.action)
        elif isinstance(obj, Service):
            # Unchanged: it keeps the ports it has stored.
            stored = state.get("Service", obj.meta.name, obj.meta.namespace)
            ports_taken |= taken_node_ports([stored] if isinstance(stored, Service) else [])
        if isinstance(obj, Service) and not obj.headless:
            taken.add(obj.cluster_ip)
        result.append(p)
    return result


def _tracked(p: Applied, state: ClusterState, track: FieldTracker) -> Applied:
    existing = state.get(p.obj.kind, p.obj.meta.name, p.obj.meta.namespace)
    return Applied(track(existing, p.obj), p.action)


def _write(p: Applied, state: ClusterState) -> Applied:
    """Store a planned object; an unchanged one only when its managers changed."""
    if p.action != "unchanged":
        return Applied(state.put(p.obj), p.action)
    stored = state.get(p.obj.kind, p.obj.meta.name, p.obj.meta.namespace)
    if stored is not None and stored.meta.managed_fields != p.obj.meta.managed_fields:
        return Applied(state.put(p.obj), p.action)
    return p
