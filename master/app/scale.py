"""Scale and rollback: the two deployment writes that are not an apply.

Scaling sets `replicas` (generation + 1 only when it changes); rolling back puts
an earlier pod template back as a new revision, with a RolledBack event. Both
refuse a missing deployment with Kubernetes' NotFound wording and return once
the change is durable.
"""

from __future__ import annotations

from dataclasses import replace

from master.app.apply import FieldTracker
from master.app.errors import AppError, commit, not_found
from master.controllers.revisions import RollbackError, record_revision, rollback_template
from master.model import DEFAULT_NAMESPACE, Deployment, StatefulSet, StoredObject
from master.state import ClusterState

MAX_REPLICAS = 10_000


def deployment(state: ClusterState, name: str, namespace: str = DEFAULT_NAMESPACE) -> Deployment:
    """The stored deployment, or AppError(not_found)."""
    dep = state.get("Deployment", name, namespace)
    if not isinstance(dep, Deployment):
        raise not_found("Deployment", name)
    return dep


def scaled(dep: Deployment, replicas: int) -> Deployment | None:
    """The deployment with `replicas` (pure), None when nothing changes."""
    if not 0 <= replicas <= MAX_REPLICAS:
        raise AppError(
            "invalid", f"--replicas must be between 0 and {MAX_REPLICAS}, got {replicas}"
        )
    if dep.replicas == replicas:
        return None
    meta = replace(dep.meta, generation=dep.meta.generation + 1)
    return replace(dep, meta=meta, replicas=replicas)


async def scale_deployment(
    state: ClusterState,
    name: str,
    replicas: int,
    namespace: str = DEFAULT_NAMESPACE,
    track: FieldTracker | None = None,
) -> Deployment:
    """Set a deployment's replicas; returns it as stored (`track`: see apply_objects)."""

    def plan() -> Deployment:
        # Read inside the commit: an identical scale planned while another is in
        # flight sees its result, and answers only once that is durable.
        dep = deployment(state, name, namespace)
        new: StoredObject = scaled(dep, int(replicas)) or dep
        if track is not None:
            new = track(dep, new)
        if new == dep or not isinstance(new, Deployment):
            return dep
        return state.put(new)

    return await commit(state, plan)


def scaled_statefulset(sts: StatefulSet, replicas: int) -> StatefulSet | None:
    """The statefulset with `replicas` (pure), None when nothing changes."""
    if not 0 <= replicas <= MAX_REPLICAS:
        raise AppError(
            "invalid", f"--replicas must be between 0 and {MAX_REPLICAS}, got {replicas}"
        )
    if sts.replicas == replicas:
        return None
    return replace(
        sts, meta=replace(sts.meta, generation=sts.meta.generation + 1), replicas=replicas
    )


async def scale_statefulset(
    state: ClusterState,
    name: str,
    replicas: int,
    namespace: str = DEFAULT_NAMESPACE,
    track: FieldTracker | None = None,
) -> StatefulSet:
    """Set a statefulset's replicas (its pods come and go in order; claims stay)."""

    def plan() -> StatefulSet:
        sts = state.get("StatefulSet", name, namespace)
        if not isinstance(sts, StatefulSet):
            raise not_found("StatefulSet", name)
        new: StoredObject = scaled_statefulset(sts, int(replicas)) or sts
        if track is not None:
            new = track(sts, new)
        if new == sts or not isinstance(new, StatefulSet):
            return sts
        return state.put(new)

    return await commit(state, plan)


def rolled_back(dep: Deployment, to_revision: int, now: float) -> Deployment:
    """The deployment with an earlier template as its newest revision (pure)."""
    try:
        template = rollback_template(dep, to_revision)
    except RollbackError as e:
        raise AppError("failed_precondition", str(e)) from None
    history = record_revision(dep.history, template, now, "rollout undo")
    meta = replace(dep.meta, generation=dep.meta.generation + 1)
    return replace(dep, meta=meta, template=template, history=history)


async def rollback_deployment(
    state: ClusterState,
    name: str,
    to_revision: int,
    now: float,
    namespace: str = DEFAULT_NAMESPACE,
    track: FieldTracker | None = None,
) -> Deployment:
    """`rollout undo`: returns the deployment as stored, its revision the new one."""

    def plan() -> Deployment:
        dep = deployment(state, name, namespace)
        new: StoredObject = rolled_back(dep, to_revision, now)
        if track is not None:
            new = track(dep, new)
        if not isinstance(new, Deployment):
            return dep
        stored = state.put(new)
        state.record_event(
            "Deployment",
            name,
            "RolledBack",
            f"rolled back to the template of an earlier revision, now revision {stored.revision}",
            namespace=namespace,
        )
        return stored

    return await commit(state, plan)
