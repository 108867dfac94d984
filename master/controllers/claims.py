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

Afterwards (also pure): a deleted claim's volume with reclaim policy Delete is in
its node's removal orders (`to_remove`) until the node's volume report no longer
lists it (`apply_volume_report`), and then the PersistentVolume goes too; the same
report carries each claim's used bytes and filesystem size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from kernel.claimfiles import claim_file_bytes
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
                    reclaim_policy=reclaim_policy(claim.storage_class),
                    claim_namespace=claim.meta.namespace,
                )
            )
        resolved.append(replace(vol, volume_name=docker_volume(pv)))
    spec = replace(pod.spec, volumes=tuple(resolved))
    return Binding(replace(pod, spec=spec), tuple(new_claims), tuple(new_volumes))


# Each storage class's reclaim policy. `local` deletes, as Kubernetes' dynamic
# provisioners default to (and k3s' local-path class does): a deleted claim frees its
# node's disk. `local-retain` keeps the volume on its node (Released) for a person to
# look at or remove.
RECLAIM_POLICIES = {"local": "Delete", "local-retain": "Retain"}


def reclaim_policy(storage_class: str) -> str:
    return RECLAIM_POLICIES.get(storage_class, "Retain")


def docker_volume(pv_name: str) -> str:
    """The Docker volume on the node that holds a PersistentVolume's data."""
    return f"pinnace-{pv_name}"


@dataclass(frozen=True, slots=True)
class ClaimDisk:
    """A node's claim disk as its agent last reported it (kept in memory, as usage is)."""

    # Bytes new claim files can still take there.
    free_bytes: int
    # The claim volumes the node had when it measured that (their files are counted).
    listed: frozenset[str]


def claim_room(
    disk: ClaimDisk | None,
    pvs: Iterable[PersistentVolume],
    node: str,
    claims: Iterable[PersistentVolumeClaim] = (),
) -> int | None:
    """Room left for new claim files on `node`'s claim disk: the free bytes it last
    reported (None: none, sizes not enforced there) less the files of the claims bound
    there that the same report did not list (bound since; the file is made when the first
    pod starts, of the claim's request then) and less the growth of listed claims asked
    for more than their filesystem holds (a resize: the node grows the file to the new
    request's size). Counting a file twice for a moment is safe; not at all would
    overcommit."""
    if disk is None:
        return None
    by_name = {(c.meta.namespace, c.meta.name): c for c in claims}
    pending = 0
    for pv in pvs:
        if pv.node_name != node or pv.phase != "Bound":
            continue
        claim = by_name.get((pv.claim_namespace, pv.claim_name))
        request = max(pv.storage_bytes, claim.storage_bytes if claim else 0)
        if docker_volume(pv.meta.name) not in disk.listed:
            pending += claim_file_bytes(request)
        elif claim is not None and 0 < claim.capacity_bytes < claim.storage_bytes:
            held = max(pv.storage_bytes, claim.capacity_bytes)
            pending += max(0, claim_file_bytes(claim.storage_bytes) - claim_file_bytes(held))
    return disk.free_bytes - pending


def to_remove(pvs: Iterable[PersistentVolume], node: str) -> list[str]:
    """The Docker volumes `node` must remove: its Released volumes with policy Delete."""
    return sorted(
        docker_volume(pv.meta.name)
        for pv in pvs
        if pv.node_name == node and pv.phase == "Released" and pv.reclaim_policy == "Delete"
    )


@dataclass(frozen=True, slots=True)
class VolumeUse:
    """One claim volume as a node's agent measured it."""

    volume_name: str
    used_bytes: int
    capacity_bytes: int


MIB = 1 << 20


def _worth_writing(claim: PersistentVolumeClaim, use: VolumeUse) -> bool:
    """A stored claim changes when its size changed, or its use by 1 MiB and 1%."""
    if claim.capacity_bytes != use.capacity_bytes:
        return True
    if (claim.used_bytes < 0) != (use.used_bytes < 0):
        return True
    if use.used_bytes < 0:
        return False
    step = max(MIB, use.capacity_bytes // 100)
    return abs(claim.used_bytes - use.used_bytes) >= step


@dataclass(frozen=True, slots=True)
class VolumeReportOutcome:
    claims: tuple[PersistentVolumeClaim, ...]
    # PersistentVolumes whose Delete is done: their node no longer has the volume.
    deleted: tuple[str, ...]


def apply_volume_report(
    node: str,
    uses: Iterable[VolumeUse],
    listed: bool,
    claims: Iterable[PersistentVolumeClaim],
    pvs: Iterable[PersistentVolume],
) -> VolumeReportOutcome:
    """A node's claim volume report -> the claims whose use to store, the volumes gone."""
    pvs = list(pvs)
    by_volume = {u.volume_name: u for u in uses}
    changed = []
    for claim in claims:
        if claim.node_name != node or not claim.volume_name:
            continue
        use = by_volume.get(docker_volume(claim.volume_name))
        if use is not None and _worth_writing(claim, use):
            changed.append(
                replace(claim, used_bytes=use.used_bytes, capacity_bytes=use.capacity_bytes)
            )
    deleted: list[str] = []
    if listed:
        pending = set(to_remove(pvs, node))
        deleted = sorted(
            pv.meta.name
            for pv in pvs
            if docker_volume(pv.meta.name) in pending
            and docker_volume(pv.meta.name) not in by_volume
        )
    return VolumeReportOutcome(tuple(changed), tuple(deleted))
