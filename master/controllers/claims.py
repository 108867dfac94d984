"""Where a pod with PersistentVolumeClaims may run, and binding claims to node-local volumes.

pinnace's `local` storage class binds as Kubernetes' WaitForFirstConsumer: a new
claim is Pending until the first pod that uses it is scheduled; the scheduler
chooses that pod's node as for any pod, and the claim is then bound to a new
PersistentVolume on that node (`pvc-<claim uid>`, a Docker volume there named
`pinnace-pvc-<claim uid>`). From then on the claim's data is on that node only,
so every later pod of the claim may run there and nowhere else: when that node
is NotReady, full or gone, the pod stays Pending and says why — it is never
placed elsewhere with an empty volume. ReadWriteOncePod claims admit one pod at
a time.

`check_claims` decides where a pod may go, `bind_claims` makes the new claim
and volume objects and the pod's resolved volumes (pure; the controller
manager writes them in one commit with the pod's binding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from master.model import ObjectMeta, PersistentVolume, PersistentVolumeClaim, Pod


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    # The node the pod's bound claims pin it to ("" when any node will do).
    node: str = ""
    # Why the pod cannot be scheduled at all now ("" when it can).
    error: str = ""


def volume_name(claim: PersistentVolumeClaim) -> str:
    """The PersistentVolume a claim is (or will be) bound to."""
    return f"pvc-{claim.meta.uid}"


def check_claims(
    pod: Pod, claims: Mapping[str, PersistentVolumeClaim], pods: Iterable[Pod]
) -> ClaimCheck:
    names = pod.spec.claim_names()
    if not names:
        return ClaimCheck()
    pinned: dict[str, str] = {}
    others = [p for p in pods if p.meta.name != pod.meta.name and p.node_name]
    for name in names:
        claim = claims.get(name)
        if claim is None:
            return ClaimCheck(error=f'persistentvolumeclaim "{name}" not found')
        if "ReadWriteOncePod" in claim.access_modes:
            holder = next((p for p in others if name in p.spec.claim_names()), None)
            if holder is not None:
                return ClaimCheck(
                    error=f'persistentvolumeclaim "{name}" is ReadWriteOncePod and pod '
                    f"{holder.meta.name} uses it"
                )
        if claim.node_name:
            pinned[name] = claim.node_name
    nodes = set(pinned.values())
    if len(nodes) > 1:
        shown = ", ".join(f"{c} on {n}" for c, n in sorted(pinned.items()))
        return ClaimCheck(error=f"its claims are bound to different nodes ({shown})")
    return ClaimCheck(node=nodes.pop() if nodes else "")


def pinned_message(node: str, claim_names: Iterable[str], why: str) -> str:
    """Why a pod whose data lives on `node` cannot run now."""
    claims = ", ".join(f'"{c}"' for c in claim_names)
    return (
        f"its persistentvolumeclaim {claims} keeps its data on node {node}, which cannot "
        f"take the pod now ({why}); it waits for that node rather than start elsewhere "
        f"with an empty volume"
    )


@dataclass(frozen=True, slots=True)
class Binding:
    pod: Pod
    claims: tuple[PersistentVolumeClaim, ...]
    volumes: tuple[PersistentVolume, ...]


def bind_claims(
    pod: Pod, node: str, claims: Mapping[str, PersistentVolumeClaim], now: float
) -> Binding:
    """The pod with its claim volumes resolved, and the claims/volumes newly bound to `node`."""
    new_claims: list[PersistentVolumeClaim] = []
    new_volumes: list[PersistentVolume] = []
    resolved = []
    for vol in pod.spec.volumes:
        if vol.source != "persistentVolumeClaim":
            resolved.append(vol)
            continue
        claim = claims[vol.claim_name]
        pv = volume_name(claim)
        if not claim.volume_name:
            new_claims.append(replace(claim, volume_name=pv, node_name=node))
            new_volumes.append(
                PersistentVolume(
                    meta=ObjectMeta(name=pv, created_at=now),
                    storage_bytes=claim.storage_bytes,
                    access_modes=claim.access_modes,
                    node_name=node,
                    claim_name=claim.meta.name,
                    claim_uid=claim.meta.uid,
                    storage_class=claim.storage_class,
                    claim_namespace=claim.meta.namespace,
                )
            )
        resolved.append(replace(vol, volume_name=f"pinnace-{pv}"))
    spec = replace(pod.spec, volumes=tuple(resolved))
    return Binding(replace(pod, spec=spec), tuple(new_claims), tuple(new_volumes))
