"""Filter: a pod that binds new claims goes only to a node whose claim disk has their room.

A size-enforced claim is a file allocated whole on its node when its first pod starts
(agent/claim_disks.py; kernel/claimfiles.py says how big). Before this filter the
scheduler placed such a pod anywhere and, on a node without the room, the container
failed with fallocate's ENOSPC. Now, as Kubernetes' VolumeBinding plugin does for
local volumes, a node without the room is filtered out with its words ("node(s) did not
have enough free storage"), and a pod no node can take stays Pending and says so.

The room per node (NodeInfo.claim_free_bytes) is the free space the agent last reported
less the files of claims bound to the node since (master/controllers/claims.py
`claim_room`); a placement in the same
pass takes its files off too (NodeInfo.with_claim_files). Claims already bound need no new
room (their file exists or is counted), so only the pod's unbound claims are asked for
(`new_claim_bytes`). A node that reports no room (sizes not enforced) is not filtered:
its claims are plain Docker volumes. A node that has not reported since the master
started (its agent reports at once when its session starts; for a while after a master
restart the session is not back yet) is not a candidate for new claims until it does
(NOT_REPORTED): placing blind could land the pod on a full disk, where it would fail
with the agent's ENOSPC instead of waiting with the reason.

The Pending message keeps kubectl's words and then names the claims, as Kubernetes'
volume binding messages name them (`persistentvolumeclaim "data"`): `claims_note`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kernel.claimfiles import claim_file_bytes
from master.manifest.quantities import format_memory
from master.model import PersistentVolumeClaim, Pod
from master.scheduler.nodeinfo import NodeInfo

NOT_ENOUGH_STORAGE = "node(s) did not have enough free storage"
NOT_REPORTED = "node(s) had not reported their free storage yet"


def new_claim_bytes(pod: Pod, claims: Mapping[str, PersistentVolumeClaim]) -> int:
    """Disk the pod's claims that are not yet bound will take on the node it lands on."""
    return sum(
        claim_file_bytes(claim.storage_bytes)
        for name in sorted(set(pod.spec.claim_names()))
        if (claim := claims.get(name)) is not None and not claim.volume_name
    )


@dataclass(frozen=True, slots=True)
class ClaimStorageFit:
    """Built per pod: `need_bytes` is what its unbound claims take (new_claim_bytes)."""

    need_bytes: int
    name: str = "VolumeBinding"

    def filter(self, pod: Pod, info: NodeInfo) -> str | None:
        room = info.claim_free_bytes
        if self.need_bytes <= 0:
            return None
        if info.claim_room_unknown:
            return NOT_REPORTED
        if room is None or self.need_bytes <= room:
            return None
        return NOT_ENOUGH_STORAGE


def claims_note(pod: Pod, claims: Mapping[str, PersistentVolumeClaim]) -> str:
    """The pod's claims still to bind, for its Pending message:
    `Claims to bind: persistentvolumeclaim "data" (1Gi).`"""
    unbound = [
        f'persistentvolumeclaim "{name}" ({format_memory(claim.storage_bytes)})'
        for name in sorted(set(pod.spec.claim_names()))
        if (claim := claims.get(name)) is not None and not claim.volume_name
    ]
    return f"Claims to bind: {', '.join(unbound)}." if unbound else ""
