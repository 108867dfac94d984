"""The volume collector: emptyDir volumes go with their pod.

An emptyDir volume outlives its containers' restarts (the agent removes a
crashed container before it makes the next one), so it cannot go when a
container goes; it goes when its pod is gone from this node. The agent's
decisions about pods live elsewhere (agent/worker.py); this collector needs
none of them: an emptyDir volume (labelled with its node and pod) that no
container of its pod has used for `grace` seconds belongs to a pod that is
gone, and is removed. Claim volumes are never collected: their data outlives
every pod. A memory emptyDir's own tmpfs (agent/memory_volumes.py) goes right after
its Docker volume; one whose Docker volume is gone on two rounds in a row (an agent
stopped between the two removals; one round could race a pod making its volume) too.
`collectable` decides (pure); `run_volume_gc` lists, decides and removes every
`interval` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from agent.memory_volumes import MemoryVolumeError, MemoryVolumes, strays
from agent.runtime.port import (
    LABEL_VOLUME_KIND,
    ContainerInfo,
    Runtime,
    RuntimeFailure,
    VolumeInfo,
    pod_of,
)
from kernel.clock import Clock

log = logging.getLogger(__name__)

GRACE_SECONDS = 30.0
INTERVAL_SECONDS = 10.0


def collectable(
    volumes: Iterable[VolumeInfo],
    containers: Iterable[ContainerInfo],
    orphaned_since: Mapping[str, float],
    now: float,
    grace: float = GRACE_SECONDS,
) -> tuple[list[str], dict[str, float]]:
    """(volumes to remove now, when each remaining orphan was first seen without a pod)."""
    pods = {pod_of(c.labels) for c in containers}
    remove: list[str] = []
    still: dict[str, float] = {}
    for vol in volumes:
        if vol.labels.get(LABEL_VOLUME_KIND) != "emptyDir":
            continue
        if pod_of(vol.labels) in pods:
            continue
        since = orphaned_since.get(vol.name, now)
        if now - since >= grace:
            remove.append(vol.name)
        else:
            still[vol.name] = since
    return sorted(remove), still


async def run_volume_gc(
    runtime: Runtime,
    clock: Clock,
    memory: MemoryVolumes | None = None,
    interval: float = INTERVAL_SECONDS,
    grace: float = GRACE_SECONDS,
) -> None:
    orphaned: dict[str, float] = {}
    stray_before: set[str] = set()
    while True:
        try:
            volumes = await runtime.list_volumes()
            containers = await runtime.list_containers()
            remove, orphaned = collectable(volumes, containers, orphaned, clock.monotonic(), grace)
            for name in remove:
                if await runtime.remove_volume(name):
                    log.info("removed emptyDir volume %s: its pod is gone", name)
                    if memory is not None:
                        await asyncio.to_thread(memory.remove, name)
            if memory is not None:
                left = strays(await asyncio.to_thread(memory.names), (v.name for v in volumes))
                for name in stray_before.intersection(left):
                    log.info("removed memory volume %s: its Docker volume is gone", name)
                    await asyncio.to_thread(memory.remove, name)
                stray_before = set(left)
        except RuntimeFailure as e:
            log.warning("volume collector: %s", e)
        except (MemoryVolumeError, OSError) as e:
            log.warning("volume collector: memory volume: %s", e)
        await clock.sleep(interval)
