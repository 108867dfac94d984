"""Scheduling the pods that use PersistentVolumeClaims: one at a time, claims bound as they go.

A pod with claims cannot be placed in a batch with the others: the first pod of a new claim
binds it to the node it lands on (WaitForFirstConsumer), and that binding pins every later
pod of the same claim to the same node. So these pods go one after another, each seeing the
claims the ones before it bound, and each new claim's file taking its room on the node's
claim disk (NodeInfo.claim_free_bytes, master/scheduler/claim_storage.py). This is a pure
function of the pending pods, the pods already placed, the claims and the node infos; the
controller manager writes what it returns (claims, volumes, the pod's binding, events) and
nothing here touches the state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from master.controllers.claims import Binding, bind_claims, check_claims, pinned_message
from master.model import PersistentVolumeClaim, Pod, pod_ref
from master.scheduler import DEFAULT_FILTERS, Placement, schedule_batch
from master.scheduler.claim_storage import (
    NOT_ENOUGH_STORAGE,
    NOT_REPORTED,
    ClaimStorageFit,
    claims_note,
    new_claim_bytes,
)
from master.scheduler.framework import SCORE_ALL_NODES
from master.scheduler.nodeinfo import NodeInfo


@dataclass(frozen=True, slots=True)
class Placed:
    """The pod goes to `node`; `binding` has the pod with its volumes resolved and the
    claims and PersistentVolumes newly bound by it."""

    node: str
    binding: Binding


@dataclass(frozen=True, slots=True)
class Waiting:
    """The pod stays Pending, for this reason."""

    pod: Pod
    message: str


def place_pods_with_claims(
    pending: Sequence[Pod],
    placed: Iterable[Pod],
    claims: Iterable[PersistentVolumeClaim],
    infos: Mapping[str, NodeInfo],
    now: float,
    percentage_of_nodes_to_score: int = SCORE_ALL_NODES,
) -> tuple[list[Placed | Waiting], dict[str, NodeInfo]]:
    """A decision per pending pod, in order, and the node infos with the placed pods added.

    Claims, and the pods that hold them, are looked at within each pod's namespace.
    """
    claims_by_ns: dict[str, dict[str, PersistentVolumeClaim]] = {}
    for c in claims:
        claims_by_ns.setdefault(c.meta.namespace, {})[c.meta.name] = c
    holders = list(placed)
    current = dict(infos)
    decisions: list[Placed | Waiting] = []
    for pod in pending:
        ns = pod.meta.namespace
        ns_claims = claims_by_ns.setdefault(ns, {})
        check = check_claims(pod, ns_claims, [p for p in holders if p.meta.namespace == ns])
        if check.error:
            decisions.append(Waiting(pod, check.error))
            continue
        candidates: Mapping[str, NodeInfo] = current
        if check.node:
            if check.node not in current:
                why = "that node is gone"
                decisions.append(
                    Waiting(pod, pinned_message(check.node, pod.spec.claim_names(), why))
                )
                continue
            candidates = {check.node: current[check.node]}
        # Its new claims' files need room on the node's claim disk (bound ones have it).
        need = new_claim_bytes(pod, ns_claims)
        filters = (*DEFAULT_FILTERS, ClaimStorageFit(need)) if need else DEFAULT_FILTERS
        results, updated = schedule_batch(
            [pod],
            candidates,
            filters=filters,
            percentage_of_nodes_to_score=percentage_of_nodes_to_score,
        )
        result = results[pod_ref(pod)]
        if not isinstance(result, Placement):
            message = result.message
            if NOT_ENOUGH_STORAGE in result.reasons or NOT_REPORTED in result.reasons:
                message = f"{message} {claims_note(pod, ns_claims)}"
            if check.node:
                why = " and ".join(sorted(result.reasons)) or result.message
                message = pinned_message(check.node, pod.spec.claim_names(), why)
            decisions.append(Waiting(pod, message))
            continue
        current.update(updated)
        current[result.node_name] = current[result.node_name].with_claim_files(need)
        binding = bind_claims(pod, result.node_name, ns_claims, now)
        for claim in binding.claims:
            ns_claims[claim.meta.name] = claim
        decisions.append(Placed(result.node_name, binding))
        holders.append(replace(binding.pod, node_name=result.node_name))
    return decisions, current
