"""The reconcile loop: runs sync() and carries out its actions against the Runtime.

State flow: the session hands in assignment sets (`set_assignments`, newest wins);
each iteration lists this node's containers, runs the pure `sync` over the pods
that are not busy, and starts one task per pod that executes that pod's actions
in order (pods proceed in parallel, so thirty starts take about as long as a few).
Failures feed back into the backoff data (`record_pull_failure`, ...). After each
iteration the full set of pod reports goes to `publish` (the session's outbox,
which sends only changes). An iteration runs when assignments change, a
container starts or dies (runtime events), a pod task finishes, or every
`relist_interval` seconds.

Until the first assignment set arrives the worker only observes: a restarted
agent must not touch the containers it is about to adopt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from agent.clock import Clock
from agent.containers import container_config
from agent.model import Assignments, ContainerSpec, PodAssignment, PodStatusReport
from agent.runtime.port import (
    ContainerCreateError,
    ContainerInfo,
    ImagePullError,
    Runtime,
    RuntimeFailure,
)
from agent.status import adopted_status, pod_status, removed_status
from agent.sync import (
    Action,
    ContainerBackoff,
    ContainerKey,
    PullImage,
    RemoveContainer,
    RestartContainer,
    StartContainer,
    StopContainer,
    record_pull_failure,
    record_start_failure,
    sync,
)

log = logging.getLogger("pinnace.agent")

# How long a removed=true report for a pod the master no longer assigns stays in the set.
REMOVED_REPORT_TTL = 60.0


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        host_ip: str,
        clock: Clock,
        publish: Callable[[list[PodStatusReport]], None],
        relist_interval: float = 1.0,
    ) -> None:
        self._runtime = runtime
        self._host_ip = host_ip
        self._clock = clock
        self._publish = publish
        self._relist_interval = relist_interval
        self._desired: dict[str, PodAssignment] | None = None
        self._revision: int | None = None
        self._backoff: dict[ContainerKey, ContainerBackoff] = {}
        self._busy: dict[str, asyncio.Task[None]] = {}
        # Task completions are numbered, so a list taken before a pod's task finished
        # is not trusted for that pod (it would start the container a second time).
        self._completions = 0
        self._completed_at: dict[str, int] = {}
        self._orphans: dict[str, int] = {}
        self._removed: dict[str, tuple[int, float]] = {}
        self._fence_reason = ""
        # A fence is lifted by fresh assignments only after its teardown was dispatched,
        # so a quick reconnect cannot race the stop (see set_assignments).
        self._fence_dispatched = False
        self._lift_fence = False
        self._wake = asyncio.Event()
        self._observed_once = asyncio.Event()
        self._runtime_down = False

    @property
    def fenced(self) -> bool:
        return bool(self._fence_reason)

    def set_assignments(self, assignments: Assignments, reset_revision: bool = False) -> bool:
        """Applies a complete assignment set unless it is older than the one applied.

        `reset_revision` is for the first set of a new session: a restarted master may
        count revisions from scratch. Returns whether the set was applied.
        """
        if (
            not reset_revision
            and self._revision is not None
            and assignments.revision < self._revision
        ):
            return False
        self._revision = assignments.revision
        self._desired = {p.name: p for p in assignments.pods}
        if self._fence_reason:
            if self._fence_dispatched:
                self._lift()
            else:
                self._lift_fence = True
        self._wake.set()
        return True

    def _lift(self) -> None:
        log.info("fresh assignments from the master: lifting the fence")
        self._fence_reason = ""
        self._lift_fence = False

    def fence(self, reason: str) -> None:
        """Stops every pod of this node (the master may be running them elsewhere)."""
        if not self._fence_reason:
            log.warning("fencing: stopping every pod of this node: %s", reason)
        self._fence_reason = f"Fenced: {reason}"
        self._fence_dispatched = False
        self._lift_fence = False
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def wait_observed(self, timeout: float) -> bool:
        """Waits for the first successful container list (so registration can carry it)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._observed_once.wait(), timeout)
        return self._observed_once.is_set()

    async def settle(self) -> None:
        """Waits until no pod task is in flight (tests step the loop: iterate, settle)."""
        while self._busy:
            await asyncio.gather(*self._busy.values(), return_exceptions=True)

    async def run(self) -> None:
        events = asyncio.create_task(self._watch_events(), name="runtime-events")
        try:
            while True:
                try:
                    await self.iterate()
                except Exception:
                    # A bug must not take the node down with it: log it, go on next tick.
                    log.exception("reconcile iteration failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._relist_interval)
                self._wake.clear()
        finally:
            events.cancel()
            tasks = [events, *self._busy.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch_events(self) -> None:
        while True:
            try:
                async for _ in self._runtime.events():
                    self._wake.set()
            except RuntimeFailure as exc:
                log.debug("runtime event stream ended: %s", exc)
            await asyncio.sleep(1.0)

    async def iterate(self) -> None:
        """One pass: observe, decide, dispatch, report. Public so tests can step it."""
        listed_after = self._completions
        try:
            observed = await self._runtime.list_containers()
        except RuntimeFailure as exc:
            if not self._runtime_down:
                log.error("%s; retrying every %gs", exc, self._relist_interval)
            self._runtime_down = True
            return
        if self._runtime_down:
            log.info("container runtime reachable again")
            self._runtime_down = False
        self._observed_once.set()
        now = self._clock.now()
        if self._desired is not None or self._fence_reason:
            self._dispatch(observed, now, listed_after)
        self._publish(self._reports(observed, now))

    def _dispatch(self, observed: Sequence[ContainerInfo], now: float, listed_after: int) -> None:
        self._completed_at = {p: n for p, n in self._completed_at.items() if n > listed_after}
        held = set(self._busy) | set(self._completed_at)
        desired = {n: a for n, a in (self._desired or {}).items() if n not in held}
        backoff = {k: b for k, b in self._backoff.items() if k[0] not in held}
        result = sync(
            desired,
            [c for c in observed if c.pod not in held],
            now,
            backoff,
            self._fence_reason,
        )
        self._backoff = {k: b for k, b in self._backoff.items() if k[0] in held} | result.backoff
        by_pod: dict[str, list[Action]] = {}
        for action in result.actions:
            by_pod.setdefault(action.pod, []).append(action)
        for pod, actions in by_pod.items():
            self._busy[pod] = asyncio.create_task(self._execute(pod, actions), name=f"pod-{pod}")
        if self._fence_reason and not held:
            self._fence_dispatched = True
            if self._lift_fence:
                self._lift()
                self._wake.set()

    async def _execute(self, pod: str, actions: list[Action]) -> None:
        try:
            for action in actions:
                if not await self._perform(action):
                    break
        finally:
            self._busy.pop(pod, None)
            self._completions += 1
            self._completed_at[pod] = self._completions
            self._wake.set()

    async def _perform(self, action: Action) -> bool:
        """Carries out one action; False stops the rest of the pod's actions."""
        name = type(action).__name__
        log.info("%s pod=%s container=%s: %s", name, action.pod, action.container, action.reason)
        key = (action.pod, action.container)
        try:
            match action:
                case PullImage():
                    await self._runtime.ensure_image(action.image, action.pull_policy)
                case StartContainer():
                    await self._start(action.assignment, action.spec, action.restart_count)
                case RestartContainer():
                    await self._runtime.remove(action.container_id)
                    await self._start(action.assignment, action.spec, action.restart_count)
                case StopContainer():
                    await self._runtime.stop(action.container_id, action.grace_seconds)
                case RemoveContainer():
                    await self._runtime.remove(action.container_id)
        except ImagePullError as exc:
            log.warning("pod=%s container=%s: %s", action.pod, action.container, exc)
            self._backoff = record_pull_failure(self._backoff, key, self._clock.now(), str(exc))
            return False
        except ContainerCreateError as exc:
            log.warning("pod=%s container=%s: %s", action.pod, action.container, exc)
            self._backoff = record_start_failure(self._backoff, key, self._clock.now(), str(exc))
            return False
        except RuntimeFailure as exc:
            log.warning(
                "%s pod=%s container=%s failed: %s", name, action.pod, action.container, exc
            )
            return False
        return True

    async def _start(
        self, assignment: PodAssignment, spec: ContainerSpec, restart_count: int
    ) -> None:
        config = container_config(
            self._runtime.node, self._host_ip, assignment, spec, restart_count
        )
        info = await self._runtime.create_and_start(config)
        log.info(
            "started pod=%s container=%s id=%s ports=%s",
            assignment.name,
            spec.name,
            info.id[:12],
            info.ports or "-",
        )

    def _reports(self, observed: Sequence[ContainerInfo], now: float) -> list[PodStatusReport]:
        by_pod: dict[str, list[ContainerInfo]] = {}
        for c in observed:
            by_pod.setdefault(c.pod, []).append(c)
        if self._desired is None:
            return [adopted_status(p, cs, self._host_ip) for p, cs in sorted(by_pod.items())]
        reports = [
            pod_status(a, by_pod.get(name, []), self._backoff, now, self._host_ip)
            for name, a in sorted(self._desired.items())
        ]
        # Pods found but not assigned are torn down; once gone, say so for a while.
        for pod, containers in by_pod.items():
            if pod not in self._desired:
                self._orphans[pod] = max(c.epoch for c in containers)
        for pod in list(self._orphans):
            if pod in self._desired:
                del self._orphans[pod]
            elif pod not in by_pod:
                self._removed[pod] = (self._orphans.pop(pod), now)
        for pod, (epoch, since) in list(self._removed.items()):
            if pod in self._desired or now - since > REMOVED_REPORT_TTL:
                del self._removed[pod]
            else:
                reports.append(removed_status(pod, epoch, self._host_ip))
        return reports
