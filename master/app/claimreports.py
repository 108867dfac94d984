"""A node's claim volume report: each claim's used bytes, and the volumes it removed.

Agents report their claim volumes with their usage (every few seconds, with CPU and
memory). The pure decision (master/controllers/claims.py `apply_volume_report`)
says which claims' stored use changed enough to write, and which Released volumes
with reclaim policy Delete are gone from the node — those PersistentVolumes are
removed with an event. Nothing here runs when the report could not list volumes.
"""

from __future__ import annotations

from collections.abc import Sequence

from master.controllers.claims import VolumeUse, apply_volume_report, to_remove
from master.model import PersistentVolume, PersistentVolumeClaim
from master.state import ClusterState


def _claims(state: ClusterState) -> list[PersistentVolumeClaim]:
    return [
        c for c in state.objects("PersistentVolumeClaim") if isinstance(c, PersistentVolumeClaim)
    ]


def _volumes(state: ClusterState) -> list[PersistentVolume]:
    return [v for v in state.objects("PersistentVolume") if isinstance(v, PersistentVolume)]


def removal_orders(state: ClusterState, node: str) -> list[str]:
    """The Docker volumes `node` is to remove now."""
    return to_remove(_volumes(state), node)


def record_volume_report(
    state: ClusterState, node: str, uses: Sequence[VolumeUse], listed: bool
) -> None:
    if not state.writable:
        return
    outcome = apply_volume_report(node, uses, listed, _claims(state), _volumes(state))
    for claim in outcome.claims:
        state.put(claim)
    for name in outcome.deleted:
        state.remove("PersistentVolume", name)
        state.record_event(
            "PersistentVolume",
            name,
            "VolumeDeleted",
            f"persistentvolume {name} deleted: node {node} removed its volume "
            f"(reclaim policy Delete)",
        )
