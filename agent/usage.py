"""What this node and its pods use now, for `pinnace top` (like Kubernetes' metrics-server).

Every few seconds the session asks `UsageSampler.sample()`: one Docker stats reading per
running container of this node, plus the machine's own CPU and memory (psutil). CPU is a
rate, so it needs two readings: the sampler keeps each container's previous cumulative CPU
time and reports the millicores used in between (`cpu_millis_between`, pure); a container's
first reading reports 0 until the next one. Memory is what the container uses now.
Each claim volume's used bytes ride along (agent/claim_volumes.py `measure`; a claim that is
a plain Docker volume, where sizes are not enforced, with what the engine counts in it,
asked at most once a minute), and the room left for claim files on the claim dir's disk
(the scheduler places new claims by it).
A container that stops between the listing and its reading is left out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import psutil

from agent.claim_disks import ClaimDisks
from agent.claim_volumes import VolumeUse, measure
from agent.runtime.port import ContainerInfo, ContainerStats, Runtime, RuntimeFailure
from kernel.clock import Clock

log = logging.getLogger(__name__)

# How often the engine is asked what plain claim volumes hold (`docker system df` walks
# every file of every volume, so not every 5 s).
PLAIN_SIZES_SECONDS = 60.0
# How long a sample may wait for the node's container starts to end (usage_hold): with the
# 5 s interval, `top` is never staler than metrics-server's own 15 s scrape. 5 s was less
# than an apply -> 30 burst here (5.6-7.9 s at load 10-17): its sample went in the middle.
USAGE_HOLD_MAX = 10.0


@dataclass(frozen=True, slots=True)
class ContainerUse:
    pod: str
    container: str
    cpu_millis: int
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class UsageSample:
    node_cpu_millis: int
    node_memory_bytes: int
    containers: tuple[ContainerUse, ...]
    measured_at: float  # wall clock
    # This node's claim volumes (None: they could not be listed this time).
    volumes: tuple[VolumeUse, ...] | None = None
    # Room left for claim files on the claim dir's disk, measured after `volumes` were
    # listed (None: sizes not enforced here, or the volumes could not be listed).
    claim_free_bytes: int | None = None


def cpu_millis_between(before: tuple[float, int] | None, at: float, cpu_ns: int) -> int:
    """Millicores used between the reading `before` ((monotonic s, cumulative ns)) and now;
    0 without a previous reading, after a restart (the counter went back) or no time."""
    if before is None:
        return 0
    then, ns = before
    elapsed = at - then
    if elapsed <= 0 or cpu_ns < ns:
        return 0
    return round((cpu_ns - ns) / elapsed / 1e6)


def usage_hold(now: float, due: float, starting: int, hold_max: float = USAGE_HOLD_MAX) -> float:
    """Seconds a usage sample due at `due` still waits (monotonic): 0 when no container
    start is under way, or once it has waited `hold_max`; else until then (the starts'
    end ends the wait sooner). A sample is one list and one stats call per running
    container, all at once: in a burst of starts (apply -> 30) that was thirty engine calls
    queued among the creates and starts, and at 3 a trial's worst figure when it fell
    inside one (issue 15). `top` shows the sample a few seconds late instead; a node
    that never stops starting containers still samples every interval plus `hold_max`."""
    if starting <= 0:
        return 0.0
    return max(0.0, due + hold_max - now)


class Starts(Protocol):
    """Where a usage sample learns of container starts (the agent's Worker)."""

    @property
    def starting(self) -> int: ...

    async def wait_starts_quiet(self, timeout: float) -> bool: ...


async def hold_for_starts(clock: Clock, starts: Starts) -> None:
    """Returns once a sample due now may be taken (usage_hold)."""
    due = clock.monotonic()
    while (hold := usage_hold(clock.monotonic(), due, starts.starting)) > 0:
        await starts.wait_starts_quiet(hold)


def machine_usage() -> tuple[int, int]:
    """The whole machine: millicores busy since the previous call, memory not available."""
    cpus = psutil.cpu_count(logical=True) or 1
    busy = psutil.cpu_percent(interval=None) / 100 * cpus * 1000
    vm = psutil.virtual_memory()
    return round(busy), int(vm.total - vm.available)


class UsageSampler:
    def __init__(
        self,
        runtime: Runtime,
        clock: Clock,
        machine: Callable[[], tuple[int, int]] = machine_usage,
        disks: ClaimDisks | None = None,
    ) -> None:
        self._runtime = runtime
        # Where claim volumes' filesystems are measured (None: sizes not enforced here).
        self._disks = disks
        self._clock = clock
        self._machine = machine
        self._previous: dict[str, tuple[float, int]] = {}
        # The engine's last measure of plain claim volumes, and when (monotonic).
        self._sizes: dict[str, int] = {}
        self._sizes_at: float | None = None
        machine()  # psutil's CPU percentage counts from its previous call: start it now

    async def sample(self) -> UsageSample:
        running = [
            c for c in await self._runtime.list_containers() if c.state == "running" and c.pod
        ]
        readings = await asyncio.gather(
            *(self._runtime.stats(c.id) for c in running), return_exceptions=True
        )
        at = self._clock.monotonic()
        uses: list[ContainerUse] = []
        previous: dict[str, tuple[float, int]] = {}
        for info, reading in zip(running, readings, strict=True):
            if isinstance(reading, ContainerStats):
                uses.append(self._use(info, reading, at))
                previous[info.id] = (at, reading.cpu_ns)
        self._previous = previous
        cpu, memory = self._machine()
        try:
            volumes: tuple[VolumeUse, ...] | None = tuple(await measure(self._runtime, self._disks))
        except RuntimeFailure:
            volumes = None
        if volumes and any(v.used_bytes < 0 for v in volumes):
            volumes = await self._with_plain_sizes(volumes)
        free = None
        if volumes is not None and self._disks is not None:
            # After the listing: a claim file made in between is counted twice by the
            # master (here and as not yet listed), never not at all.
            try:
                free = await asyncio.to_thread(self._disks.free_bytes)
            except OSError:
                free = None
        return UsageSample(cpu, memory, tuple(uses), self._clock.now(), volumes, free)

    async def _with_plain_sizes(self, volumes: tuple[VolumeUse, ...]) -> tuple[VolumeUse, ...]:
        """Claims that are plain Docker volumes (sizes not enforced here) with the bytes the
        engine counts in them, measured at most every PLAIN_SIZES_SECONDS (it walks them)."""
        now = self._clock.monotonic()
        if self._sizes_at is None or now - self._sizes_at >= PLAIN_SIZES_SECONDS:
            try:
                self._sizes = await self._runtime.volume_sizes()
            except RuntimeFailure as exc:
                log.info("cannot measure the claims' plain volumes: %s", exc)
                self._sizes = {}
            self._sizes_at = now
        return tuple(
            replace(v, used_bytes=self._sizes.get(v.volume_name, -1)) if v.used_bytes < 0 else v
            for v in volumes
        )

    def _use(self, info: ContainerInfo, reading: ContainerStats, at: float) -> ContainerUse:
        cpu = cpu_millis_between(self._previous.get(info.id), at, reading.cpu_ns)
        return ContainerUse(info.pod, info.container, cpu, reading.memory_bytes)
