"""Delete: what removing objects by name means, for every API edge.

A pod is stopped gracefully (its deployment then makes a replacement), a node is
forgotten with every pod bound to it and the ports its node proxy reported it could not
serve (master/app/proxyproblems.py), anything else is removed with a Deleted
event; with `orphan` (Kubernetes' propagationPolicy Orphan) a Deployment's or
StatefulSet's pods and claims stay, without their owner (master/app/orphans.py).
Deleting by file tolerates objects that are already gone (each is reported `not
found`); deleting one object by name refuses a missing one before anything is changed.
The call returns once the deletion is durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from master.app.errors import AppError, commit, not_found
from master.app.namespaces import mark_terminating
from master.app.orphans import OWNER_KINDS, orphans, owner_value
from master.app.proxyproblems import forget_node_problems
from master.app.queries import check_kind
from master.model import DEFAULT_NAMESPACE, PersistentVolume, PersistentVolumeClaim, Pod
from master.state import ClusterState

DeleteAction = Literal["deleted", "not found"]
# (kind, name) in "default", or (kind, name, namespace).
Target = tuple[str, str] | tuple[str, str, str]


class NodeLifecycle(Protocol):
    """What the controllers do when a user deletes a pod or a node."""

    def delete_pod(
        self, name: str, reason: str, message: str, namespace: str = DEFAULT_NAMESPACE
    ) -> bool: ...

    def forget_node(self, name: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Deleted:
    kind: str
    name: str
    action: DeleteAction
    namespace: str = DEFAULT_NAMESPACE


def _triple(target: Target) -> tuple[str, str, str]:
    return (target[0], target[1], target[2] if len(target) == 3 else DEFAULT_NAMESPACE)


async def delete_objects(
    state: ClusterState,
    lifecycle: NodeLifecycle,
    targets: Sequence[Target],
    missing_ok: bool,
    grace_seconds: int | None = None,
    orphan: bool = False,
) -> list[Deleted]:
    """Delete (kind, name[, namespace]) targets; AppError(not_found) for a missing one
    unless `missing_ok`. `grace_seconds` (a delete's gracePeriodSeconds) replaces the
    pods' terminationGracePeriodSeconds for this stop. `orphan` (propagationPolicy
    Orphan): what the targets own stays, without its owner (master/app/orphans.py)."""
    triples = [_triple(t) for t in targets]
    for kind, _, _ in triples:
        check_kind(kind)

    def plan() -> list[Deleted]:
        if not missing_ok:
            for kind, name, ns in triples:
                if state.get(kind, name, ns) is None:
                    raise not_found(kind, name)
        results = []
        for kind, name, ns in triples:
            if state.get(kind, name, ns) is None:
                results.append(Deleted(kind, name, "not found", ns))
                continue
            if grace_seconds is not None and kind == "Pod":
                set_stop_grace(state, name, ns, grace_seconds)
            if orphan:
                _orphan_dependents(state, kind, name, ns)
            delete_one(state, lifecycle, kind, name, ns)
            results.append(Deleted(kind, name, "deleted", ns))
        return results

    return await commit(state, plan)


def _orphan_dependents(state: ClusterState, kind: str, name: str, ns: str) -> None:
    if kind not in OWNER_KINDS:
        return
    claims = [
        c
        for c in state.objects("PersistentVolumeClaim", ns)
        if isinstance(c, PersistentVolumeClaim)
    ]
    kept = orphans(kind, name, ns, state.pods_of_owner(owner_value(kind, name), ns), claims)
    for obj in kept:
        state.put(obj)
    if kept:
        pods = sum(1 for o in kept if isinstance(o, Pod))
        state.record_event(
            kind, name, "Orphaned",
            f"{kind.lower()} {name} deleted with propagationPolicy Orphan: its {pods} pods "
            f"and {len(kept) - pods} claims stay, without an owner",
            namespace=ns,
        )  # fmt: skip


def set_stop_grace(state: ClusterState, name: str, ns: str, seconds: int) -> None:
    pod = state.pod(name, ns)
    if pod is None:
        return
    if pod.deletion_requested_at and 0 <= pod.stop_grace_seconds <= seconds:
        return  # already stopping, as soon or sooner (a delete may only shorten it)
    state.put(replace(pod, deletion_grace_seconds=seconds))


def delete_one(
    state: ClusterState, lifecycle: NodeLifecycle, kind: str, name: str, ns: str
) -> None:
    """Delete one existing object inside a plan, as `delete` does it for a user."""
    if kind == "Pod":
        lifecycle.delete_pod(name, "Killing", f"pod {name} deleted by a user", ns)
    elif kind == "Node":
        if lifecycle.forget_node(name):
            forget_node_problems(state, name)
    elif kind == "PersistentVolumeClaim":
        _delete_claim(state, name, ns)
    elif kind == "Namespace":
        mark_terminating(state, name, state.now())
    else:
        state.remove(kind, name, ns)
        state.record_event(kind, name, "Deleted", f"{kind.lower()} {name} deleted", namespace=ns)


def _delete_claim(state: ClusterState, name: str, ns: str) -> None:
    """A claim in use stays (its data would vanish under a running pod); its volume is
    Released: kept on its node with reclaim policy Retain, with Delete removed by its
    node's agent on order (master/controllers/claims.py `to_remove`), then forgotten."""
    users = sorted(p.meta.name for p in state.pods(ns) if name in p.spec.claim_names())
    if users:
        raise AppError(
            "failed_precondition",
            f"persistentvolumeclaim {name} is used by pod {', '.join(users[:3])}"
            f"{' ...' if len(users) > 3 else ''}: delete or scale down what runs them first",
        )
    claim = state.remove("PersistentVolumeClaim", name, ns)
    if isinstance(claim, PersistentVolumeClaim) and claim.volume_name:
        pv = state.get("PersistentVolume", claim.volume_name)
        if isinstance(pv, PersistentVolume):
            state.put(replace(pv, phase="Released"))
            keep = (
                f"node {pv.node_name} removes its volume (reclaim policy Delete)"
                if pv.reclaim_policy == "Delete"
                else f"its volume stays on node {pv.node_name} (reclaim policy Retain)"
            )
            state.record_event(
                "PersistentVolumeClaim",
                name,
                "Deleted",
                f"persistentvolumeclaim {name} deleted; {keep}",
                namespace=ns,
            )
            return
    state.record_event(
        "PersistentVolumeClaim",
        name,
        "Deleted",
        f"persistentvolumeclaim {name} deleted",
        namespace=ns,
    )
