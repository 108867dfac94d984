"""Orphaning: what a delete with `propagationPolicy: Orphan` leaves behind, and how.

Kubernetes' garbage collector, told to orphan, deletes the owner and removes the
owner's ownerReference from each dependent, which then lives on unowned. pinnace keeps
ownership as the dependent's `owner` field (a Deployment's pods: the deployment's
name; a StatefulSet's pods and, with `whenDeleted: Delete`, its claims:
"StatefulSet/<name>"), so orphaning clears that field. The controllers find a
deleted owner's dependents by that field alone (`pods_of_owner`, `orphaned_claims`),
so an orphaned pod keeps running and an orphaned claim keeps its data, both until a
user deletes them. A Deployment's ReplicaSets are a view of its revisions in pinnace
(never stored): they go with it, and its pods are orphaned directly.

`orphans` decides (pure): the changed copies of the dependents of one owner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from master.model import STATEFULSET_OWNER, PersistentVolumeClaim, Pod

# The kinds whose objects own others; deleting any other kind orphans nothing.
OWNER_KINDS = ("Deployment", "StatefulSet")


def owner_value(kind: str, name: str) -> str:
    """The `owner` field a dependent of kind/name carries ("" for a kind that owns nothing)."""
    if kind == "Deployment":
        return name
    if kind == "StatefulSet":
        return STATEFULSET_OWNER + name
    return ""


def orphans(
    kind: str,
    name: str,
    namespace: str,
    pods: Iterable[Pod],
    claims: Iterable[PersistentVolumeClaim] = (),
) -> list[Pod | PersistentVolumeClaim]:
    """The dependents of `kind`/`name` in `namespace`, each without its owner (to store
    before the owner is removed). Pods already stopping are left as they are: they are
    going anyway, and their owner's controller no longer counts them."""
    owner = owner_value(kind, name)
    if not owner:
        return []
    changed: list[Pod | PersistentVolumeClaim] = [
        replace(p, owner="")
        for p in pods
        if p.owner == owner and p.meta.namespace == namespace and not p.deletion_requested_at
    ]
    changed.extend(
        replace(c, owner="") for c in claims if c.owner == owner and c.meta.namespace == namespace
    )
    return changed
