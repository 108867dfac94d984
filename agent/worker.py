"""The reconcile loop: runs sync() and carries out its actions against the Runtime.

State flow: the session hands in assignment sets (`set_assignments`, newest wins);
each iteration lists this node's containers, runs the pure `sync` over the pods
that are not busy, and starts one task per pod that executes that pod's actions
in order (pods proceed in parallel, so thirty starts take about as long as a few).
Failures feed back into the backoff data (`record_pull_failure`, ...). After each
iteration the full set of pod reports goes to `publish` (the session's outbox,
which sends only changes). An iteration runs when assignments change, a
container starts or dies (runtime events), a pod task finishes, a probe's
verdict changes, a probe is due, or every `relist_interval` seconds.

Probes (agent/probes.py decides, agent/prober.py performs) run on the side: each
pass starts the due ones as tasks, each bounded by its timeout, and their
outcomes update the probe states that the next pass reads: readiness into the
pod reports, failed liveness into sync (which restarts the container).

Until the first assignment set arrives the worker only observes: a restarted
agent must not touch the containers it is about to adopt. Pods a fence stopped
are reported with reason Fenced, so the master can say why in its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from agent.containers import container_config
from agent.model import Assignments, ContainerSpec, PodAssignment, PodStatusReport
from agent.prober import run_probe
from agent.probes import (
    ProbeKey,
    ProbeResult,
    ProbeState,
    ProbeTarget,
    next_due,
    plan_probes,
    record_result,
    unhealthy_containers,
)
from agent.runtime.port import (
    ContainerCreateError,
    ContainerInfo,
    ImagePullError,
    Runtime,
    RuntimeFailure,
)
from agent.status import adopted_status, fenced_status, pod_status, removed_status
from agent.sync import (
    Action,
    ContainerBackoff,
    ContainerKey,
    PullImage,
    RemoveContainer,
    RestartContainer,
    StartContainer,
    StopContainer,
    record_image_note,
    record_pull_failure,
    record_start_failure,
    sync,
)
from kernel.clock import Clock

log = logging.getLogger("pinnace.agent")

# How long a removed=true report for a pod the master no longer assigns stays in the set.
REMOVED_REPORT_TTL = 60.0

Checker = Callable[[ProbeTarget], Awaitable[ProbeResult]]


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        host_ip: str,
        clock: Clock,
        publish: Callable[[list[PodStatusReport]], None],
        relist_interval: float = 1.0,
        check: Checker | None = None,
    ) -> None:
        self._runtime = runtime
        # How a probe is performed; tests inject their own.
        self._check: Checker = check or (lambda target: run_probe(target, runtime))
        self._probes: dict[ProbeKey, ProbeState] = {}
        self._probe_tasks: set[asyncio.Task[None]] = set()
        # Containers last reported ready: after an agent restart they stay ready until
        # their first probe answers (see agent/probes.py), instead of flapping.
        self._reported_ready: frozenset[str] = frozenset()
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
        # Pods whose containers a fence stopped: pod -> (epoch, fence reason, since),
        # reported as Fenced until the master assigns the pod here again or for a while.
        self._fenced: dict[str, tuple[int, str, float]] = {}
        self._fence_reason = ""
        # A fence is lifted by fresh assignments only after its teardown was dispatched,
        # so a quick reconnect cannot race the stop (see set_assignments).
        self._fence_dispatched = False
        self._lift_fence = False
        self._wake = asyncio.Event()
        self._observed_once = asyncio.Event()
        # Set while fenced once a list found no container left (the teardown is done).
        self._fence_cleared = asyncio.Event()
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
        self._fence_cleared.clear()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def wait_fence_cleared(self, timeout: float) -> bool:
        """While fenced, waits until every container is gone, so the session re-registers
        (and the node turns Ready) only after its stale copies have stopped."""
        if not self._fence_reason:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._fence_cleared.wait(), timeout)
        return self._fence_cleared.is_set()

    async def wait_observed(self, timeout: float) -> bool:
        """Waits for the first successful container list (so registration can carry it)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._observed_once.wait(), timeout)
        return self._observed_once.is_set()

    async def settle(self) -> None:
        """Waits until no pod task or probe is in flight (tests step the loop: iterate,
        settle)."""
        while self._busy or self._probe_tasks:
            await asyncio.gather(*self._busy.values(), *self._probe_tasks, return_exceptions=True)

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
                    await asyncio.wait_for(self._wake.wait(), self._pause())
                self._wake.clear()
        finally:
            events.cancel()
            tasks = [events, *self._busy.values(), *self._probe_tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _pause(self) -> float:
        """How long to wait for a wake-up: the relist interval, or less when a probe is
        due sooner."""
        due = next_due(self._probes)
        if due is None:
            return self._relist_interval
        return min(self._relist_interval, max(0.0, due - self._clock.now()))

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
        if self._fence_reason and not observed:
            self._fence_cleared.set()
        now = self._clock.now()
        self._start_probes(observed, now)
        if self._desired is not None or self._fence_reason:
            self._dispatch(observed, now, listed_after)
        reports = self._reports(observed, now)
        self._reported_ready = frozenset(
            c.container_id for r in reports for c in r.containers if c.ready
        )
        self._publish(reports)

    def _start_probes(self, observed: Sequence[ContainerInfo], now: float) -> None:
        # A fenced node is stopping everything: probing it would only add noise.
        desired = {} if self._fence_reason else (self._desired or {})
        self._probes, due = plan_probes(
            desired, observed, self._probes, now, self._host_ip, self._reported_ready
        )
        for target in due:
            task = asyncio.create_task(self._probe(target), name=f"probe-{target.key}")
            self._probe_tasks.add(task)
            task.add_done_callback(self._probe_tasks.discard)

    async def _probe(self, target: ProbeTarget) -> None:
        try:
            result = await self._check(target)
        except Exception as exc:
            # The prober turns errors into failures; anything else is a bug, not a pass.
            log.exception("probe %s failed unexpectedly", target.key)
            result = ProbeResult(False, f"probe error: {exc}")
        pod, container, kind = target.key
        if not result.ok:
            log.debug("%s probe of pod=%s container=%s failed: %s", kind, pod, container, result)
        self._probes, changed = record_result(self._probes, self._desired or {}, target, result)
        if changed:
            passing = self._probes[target.key].passing
            log.info(
                "pod=%s container=%s: %s probe now %s%s",
                pod,
                container,
                kind,
                "passing" if passing else "failing",
                "" if passing else f": {result.message}",
            )
            self._wake.set()

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
            unhealthy_containers(self._probes),
        )
        self._backoff = {k: b for k, b in self._backoff.items() if k[0] in held} | result.backoff
        by_pod: dict[str, list[Action]] = {}
        for action in result.actions:
            by_pod.setdefault(action.pod, []).append(action)
        for pod, actions in by_pod.items():
            self._busy[pod] = asyncio.create_task(self._execute(pod, actions), name=f"pod-{pod}")
        if self._fence_reason:
            assigned = self._desired or {}
            for c in observed:
                epoch = assigned[c.pod].epoch if c.pod in assigned else c.epoch
                why = self._fence_reason.removeprefix("Fenced: ")
                self._fenced.setdefault(c.pod, (epoch, why, now))
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
                    note = await self._runtime.ensure_image(action.image, action.pull_policy)
                    if note:
                        log.warning("pod=%s container=%s: %s", action.pod, action.container, note)
                    self._backoff = record_image_note(self._backoff, key, note)
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
            pod_status(a, by_pod.get(name, []), self._backoff, now, self._host_ip, self._probes)
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
        return self._with_fenced(reports, by_pod, now)

    def _with_fenced(
        self,
        reports: list[PodStatusReport],
        by_pod: dict[str, list[ContainerInfo]],
        now: float,
    ) -> list[PodStatusReport]:
        """Pods stopped by a fence are reported as Fenced (not as merely Pending or Stopped)."""
        desired = self._desired or {}
        for pod, (_, _, since) in list(self._fenced.items()):
            if (pod in desired and not self._fence_reason) or now - since > REMOVED_REPORT_TTL:
                del self._fenced[pod]
        if not self._fenced:
            return reports
        kept = [r for r in reports if r.pod_name not in self._fenced]
        for pod, (epoch, why, _) in sorted(self._fenced.items()):
            kept.append(fenced_status(pod, epoch, why, self._host_ip, pod not in by_pod))
        return kept
