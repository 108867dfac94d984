"""reconcile_statefulset: pods with stable names and their own storage, in order.

Kubernetes' StatefulSet guarantees, decided over plain data:
- Pod `<set>-<i>` for every ordinal i < replicas, and a claim `<template>-<set>-<i>`
  per volumeClaimTemplate that outlives the pod: a pod deleted, evicted or scaled
  away comes back under its name with the same claim (so, with local storage, on
  the same node).
- OrderedReady: ordinal i is created only when 0..i-1 are Running and Ready;
  scale-down removes the highest ordinal first, one at a time. Parallel: all at once.
- RollingUpdate: once every pod is up, the highest ordinal >= `partition` whose
  template is stale is deleted (and recreated from the new template), one at a
  time; OnDelete: a stale pod is replaced only when the user deletes it.
- persistentVolumeClaimRetentionPolicy.whenScaled Delete: the claims of ordinals
  scaled away are deleted once their pods are gone. whenDeleted Delete: the set's
  claims are owned by it (`owner`, Kubernetes' ownerReference; kept in step when
  the policy changes), and once the set is deleted and no pod uses them they are
  deleted (`orphaned_claims`); with Retain they stay.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from master.controllers.actions import CreatePod, DeletePod
from master.controllers.naming import template_hash
from master.model import (
    STATEFULSET_OWNER,
    ObjectMeta,
    PersistentVolumeClaim,
    Pod,
    PodPhase,
    StatefulSet,
    StatefulSetStatus,
)

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
REVISION_LABEL = "controller-revision-hash"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


@dataclass(frozen=True, slots=True)
class CreateClaim:
    claim: PersistentVolumeClaim
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class DeleteClaim:
    name: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class SetClaimOwner:
    claim: PersistentVolumeClaim


@dataclass(frozen=True, slots=True)
class SetStatefulSetStatus:
    name: str
    status: StatefulSetStatus


StatefulSetAction = (
    CreatePod | DeletePod | CreateClaim | DeleteClaim | SetClaimOwner | SetStatefulSetStatus
)


def claim_name(template: str, sts: StatefulSet, ordinal: int) -> str:
    return f"{template}-{sts.meta.name}-{ordinal}"


def ordinal_of(sts: StatefulSet, pod: Pod) -> int | None:
    match = re.fullmatch(re.escape(sts.meta.name) + r"-(0|[1-9][0-9]*)", pod.meta.name)
    return int(match.group(1)) if match else None


def _pod(sts: StatefulSet, ordinal: int, hash_: str) -> Pod:
    name = f"{sts.meta.name}-{ordinal}"
    claims = {t.name for t in sts.claim_templates}
    volumes = tuple(
        replace(v, claim_name=claim_name(v.name, sts, ordinal)) if v.name in claims else v
        for v in sts.template.spec.volumes
    )
    labels = {
        **sts.template.labels,
        REVISION_LABEL: f"{sts.meta.name}-{hash_}",
        POD_NAME_LABEL: name,
        POD_INDEX_LABEL: str(ordinal),
    }
    return Pod(
        meta=ObjectMeta(name=name, labels=labels, namespace=sts.meta.namespace),
        spec=replace(sts.template.spec, volumes=volumes),
        owner=sts.owner,
        template_hash=hash_,
    )


def _up(pod: Pod) -> bool:
    return (
        pod.status.phase == PodPhase.RUNNING and pod.status.ready and not pod.deletion_requested_at
    )


def reconcile_statefulset(
    sts: StatefulSet,
    pods: Iterable[Pod],
    claims: Mapping[str, PersistentVolumeClaim],
    now: float,
) -> list[StatefulSetAction]:
    hash_ = template_hash(sts.template)
    by_ordinal = {o: p for p in pods if (o := ordinal_of(sts, p)) is not None}
    ordered = sts.pod_management_policy == "OrderedReady"
    actions: list[StatefulSetAction] = []

    for ordinal in range(sts.replicas):
        for t in sts.claim_templates:
            name = claim_name(t.name, sts, ordinal)
            if name not in claims:
                claim = PersistentVolumeClaim(
                    meta=ObjectMeta(
                        name=name,
                        labels=dict(t.labels or sts.selector),
                        created_at=now,
                        namespace=sts.meta.namespace,
                    ),
                    access_modes=t.access_modes,
                    storage_bytes=t.storage_bytes,
                    storage_class=t.storage_class,
                    owner=_claim_owner(sts),
                )
                actions.append(
                    CreateClaim(
                        claim,
                        "SuccessfulCreate",
                        f"created claim {name} for pod {sts.meta.name}-{ordinal}",
                    )
                )

    busy = False  # an ordered set waits for a pod that is coming or going
    for ordinal in range(sts.replicas):
        pod = by_ordinal.get(ordinal)
        if pod is None:
            if not busy:
                new = _pod(sts, ordinal, hash_)
                actions.append(
                    CreatePod(
                        new,
                        "SuccessfulCreate",
                        f"create pod {new.meta.name} in statefulset {sts.meta.name}",
                    )
                )
            busy = busy or ordered
            continue
        if not _up(pod):
            busy = busy or ordered

    condemned = sorted(
        (p for o, p in by_ordinal.items() if o >= sts.replicas),
        key=lambda p: -(ordinal_of(sts, p) or 0),
    )
    stopping = [p for p in condemned if p.deletion_requested_at]
    for pod in condemned:
        if pod.deletion_requested_at:
            continue
        if ordered and (stopping or busy):
            break
        actions.append(
            DeletePod(
                pod.meta.name,
                "SuccessfulDelete",
                f"delete pod {pod.meta.name}: statefulset {sts.meta.name} scaled to {sts.replicas}",
            )
        )
        if ordered:
            break

    if sts.when_scaled == "Delete":
        actions += _claims_scaled_away(sts, claims, set(by_ordinal))
    owner = _claim_owner(sts)
    for name in sorted(claims):
        claim = claims[name]
        if claim.owner != owner and _ordinal_of_claim(sts, name) is not None:
            actions.append(SetClaimOwner(replace(claim, owner=owner)))

    live = [p for o, p in by_ordinal.items() if o < sts.replicas]
    settled = len(live) == sts.replicas and all(_up(p) for p in live) and not condemned
    if sts.update_strategy == "RollingUpdate" and settled:
        stale = sorted(
            (
                p
                for o, p in by_ordinal.items()
                if sts.partition <= o < sts.replicas and p.template_hash != hash_
            ),
            key=lambda p: -(ordinal_of(sts, p) or 0),
        )
        if stale:
            pod = stale[0]
            actions.append(
                DeletePod(
                    pod.meta.name,
                    "RollingUpdate",
                    f"replace pod {pod.meta.name} with the new template of statefulset "
                    f"{sts.meta.name}",
                )
            )

    status = _status(sts, list(by_ordinal.values()), hash_)
    if status != sts.status:
        actions.append(SetStatefulSetStatus(sts.meta.name, status))
    return actions


def _claim_owner(sts: StatefulSet) -> str:
    return STATEFULSET_OWNER + sts.meta.name if sts.when_deleted == "Delete" else ""


def _ordinal_of_claim(sts: StatefulSet, name: str) -> int | None:
    """The ordinal of one of this set's claims (`<template>-<set>-<i>`), else None."""
    for t in sts.claim_templates:
        tail = name.removeprefix(f"{t.name}-{sts.meta.name}-")
        if tail != name and tail.isdigit():
            return int(tail)
    return None


def orphaned_claims(
    set_name: str, claims: Iterable[PersistentVolumeClaim], pods: Iterable[Pod]
) -> list[str]:
    """Claims a deleted set owned (whenDeleted: Delete) that no pod uses any more."""
    used = {name for p in pods for name in p.spec.claim_names()}
    return sorted(
        c.meta.name
        for c in claims
        if c.owner == STATEFULSET_OWNER + set_name and c.meta.name not in used
    )


def _claims_scaled_away(
    sts: StatefulSet, claims: Mapping[str, PersistentVolumeClaim], present: set[int]
) -> list[StatefulSetAction]:
    """Claims of ordinals at or above replicas whose pods are gone (whenScaled: Delete)."""
    doomed: list[StatefulSetAction] = []
    for name in sorted(claims):
        for t in sts.claim_templates:
            prefix = f"{t.name}-{sts.meta.name}-"
            tail = name.removeprefix(prefix)
            if tail == name or not tail.isdigit():
                continue
            ordinal = int(tail)
            if ordinal >= sts.replicas and ordinal not in present:
                doomed.append(
                    DeleteClaim(
                        name,
                        "SuccessfulDelete",
                        f"delete claim {name}: statefulset {sts.meta.name} scaled to "
                        f"{sts.replicas} (whenScaled: Delete)",
                    )
                )
    return doomed


def _status(sts: StatefulSet, pods: list[Pod], hash_: str) -> StatefulSetStatus:
    live = [p for p in pods if not p.deletion_requested_at]
    hashes = sorted({p.template_hash for p in live if p.template_hash != hash_})
    current = hashes[0] if hashes else hash_
    return StatefulSetStatus(
        observed_generation=sts.meta.generation,
        replicas=len(live),
        ready_replicas=sum(1 for p in live if _up(p)),
        current_replicas=sum(1 for p in live if p.template_hash == current),
        updated_replicas=sum(1 for p in live if p.template_hash == hash_),
        current_revision=f"{sts.meta.name}-{current}",
        update_revision=f"{sts.meta.name}-{hash_}",
    )
