"""The node's claim volumes: grown when their claim asks for more, removed on the master's
order, measured for `get pvc -o wide`.

Orders come from two places and meet in `ClaimOrders`: the assignment set says which
claims this node's pods use and their requested bytes now (a larger request grows the
filesystem of a claim whose pods keep running); the master's VolumeOrders name the
claim volumes to remove (a claim deleted with reclaim policy Delete). The keeper loop
(`run_claim_keeper`) lists the node's claim volumes, removes the ordered ones (the
Docker volume first: the engine refuses while a container holds it, and the next
round tries again; then the claim's file, agent/claim_disks.py) and grows the ones
asked to. `measure` reads every claim volume's use for the usage report; a volume
that is gone from a listed report is how the master learns a removal is done.

`plan_removals` and `plan_growth` decide (pure); the loop and `measure` execute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.claim_disks import ClaimDisks, DiskError
from agent.model import PodAssignment
from agent.runtime.port import LABEL_CLAIM, LABEL_VOLUME_KIND, Runtime, RuntimeFailure, VolumeInfo
from kernel.clock import Clock

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class VolumeUse:
    volume_name: str
    claim_name: str
    # -1: unknown (a plain Docker volume, no filesystem of its own to measure).
    used_bytes: int
    # 0: the size is not enforced on this node.
    capacity_bytes: int


def claim_sizes(pods: Iterable[PodAssignment]) -> dict[str, int]:
    """Each claim volume this node's pods use -> the largest requested bytes seen."""
    sizes: dict[str, int] = {}
    for pod in pods:
        for vol in pod.spec.volumes:
            if vol.source == "persistentVolumeClaim" and vol.volume_name and vol.claim_bytes:
                sizes[vol.volume_name] = max(sizes.get(vol.volume_name, 0), vol.claim_bytes)
    return sizes


def plan_removals(ordered: Iterable[str], volumes: Iterable[VolumeInfo]) -> list[str]:
    """The ordered removals that name a claim volume present on this node."""
    present = {v.name for v in volumes if v.labels.get(LABEL_VOLUME_KIND) == "claim"}
    return sorted(set(ordered) & present)


def plan_growth(
    sizes: Mapping[str, int], measured: Mapping[str, tuple[int, int] | None]
) -> list[str]:
    """Claim volumes whose filesystem is smaller than their claim's request now."""
    return sorted(
        name
        for name, want in sizes.items()
        if (m := measured.get(name)) is not None and m[1] < want
    )


class ClaimOrders:
    """What the master wants of this node's claim volumes (shared by session and worker)."""

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}
        self.remove: frozenset[str] = frozenset()
        self.changed = asyncio.Event()
        # Set when a volume was removed: the session reports usage now, not in 5 s.
        self.removed = asyncio.Event()
        # Growths tried and put off (the claim is in use where only offline growth
        # works), by size: said once, tried again every round.
        self.put_off: dict[str, int] = {}

    def set_sizes(self, pods: Iterable[PodAssignment]) -> None:
        sizes = claim_sizes(pods)
        if sizes != self.sizes:
            self.sizes = sizes
            self.changed.set()

    def set_removals(self, names: Iterable[str]) -> None:
        self.remove = frozenset(names)
        self.changed.set()


def _claim_volumes(volumes: Iterable[VolumeInfo]) -> list[VolumeInfo]:
    return [v for v in volumes if v.labels.get(LABEL_VOLUME_KIND) == "claim"]


async def measure(runtime: Runtime, disks: ClaimDisks | None) -> list[VolumeUse]:
    """Every claim volume of this node with its use (RuntimeFailure: cannot list)."""
    uses = []
    for vol in _claim_volumes(await runtime.list_volumes()):
        got = await asyncio.to_thread(disks.usage, vol.name) if disks is not None else None
        used, capacity = got if got is not None else (-1, 0)
        uses.append(VolumeUse(vol.name, vol.labels.get(LABEL_CLAIM, ""), used, capacity))
    return uses


async def keep_once(runtime: Runtime, disks: ClaimDisks | None, orders: ClaimOrders) -> None:
    volumes = await runtime.list_volumes()
    for name in plan_removals(orders.remove, volumes):
        if not await runtime.remove_volume(name):
            log.info("claim volume %s is still in use; removing it when it is not", name)
            continue
        if disks is not None:
            try:
                await asyncio.to_thread(disks.remove, name)
            except (DiskError, OSError) as exc:
                log.warning("claim volume %s removed, its file not yet: %s", name, exc)
                continue
        log.info("removed claim volume %s (reclaim policy Delete)", name)
        orders.removed.set()
    if disks is None:
        return
    # Files of volumes removed while the agent was down, or left by a failed round.
    for name in sorted(orders.remove & set(disks.names())):
        if name not in {v.name for v in volumes}:
            try:
                await asyncio.to_thread(disks.remove, name)
            except (DiskError, OSError) as exc:
                log.warning("cannot remove the file of claim volume %s: %s", name, exc)
    measured = {
        v.name: await asyncio.to_thread(disks.usage, v.name) for v in _claim_volumes(volumes)
    }
    for name in plan_growth(orders.sizes, measured):
        # Tried every round (a growth put off waits for the claim's containers to stop);
        # said once per size.
        said = orders.put_off.get(name) == orders.sizes[name]
        try:
            if not await asyncio.to_thread(disks.grow, name, orders.sizes[name]):
                orders.put_off[name] = orders.sizes[name]
        except (DiskError, OSError) as exc:
            orders.put_off[name] = orders.sizes[name]
            if not said:
                log.warning("cannot grow claim volume %s: %s", name, exc)


async def run_claim_keeper(
    runtime: Runtime,
    disks: ClaimDisks | None,
    orders: ClaimOrders,
    clock: Clock,
    interval: float = INTERVAL_SECONDS,
) -> None:
    if disks is not None:
        try:
            await asyncio.to_thread(disks.adopt)
        except OSError as e:  # the next container of each claim mounts it then
            log.warning("claim volumes: cannot look at %s: %s", disks.root, e)
    while True:
        orders.changed.clear()
        try:
            await keep_once(runtime, disks, orders)
        except (RuntimeFailure, DiskError, OSError) as e:
            # One bad round (an engine away, a stale mount) never stops the agent.
            log.warning("claim volumes: %s", e)
        waiter = asyncio.ensure_future(orders.changed.wait())
        sleeper = asyncio.ensure_future(clock.sleep(interval))
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, sleeper):
            task.cancel()
