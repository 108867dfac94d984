"""The I/O shell of the agent's pods: performs what the state machine decides.

Every decision lives in the pure AgentState (agent/state/): this module lists
the node's containers, feeds the list in (`ContainersListed`), and carries out
the instructions that come back: one task per pod running that pod's container
actions in order (pods proceed in parallel, so thirty starts take about as long
as a few; a pull goes together with the start after it, the create beside the pull:
agent/runtime/image_gate.py says why), probe tasks (agent/prober.py, each bounded by
its timeout), and the full report set handed to `publish` (the session's outbox,
which sends only changes). Outcomes go back in as events (`PodActionsFinished`, `ActionFailed`,
`ProbeFinished`). A pass runs when assignments change, a container starts, a
pod task finishes, a probe's verdict changes, a probe is due, or every
`relist_interval` seconds; all waiting is on the injected clock. A container's
die event is decided from that container alone, without a pass (agent/deaths.py):
fed in as it came (`DieSeen`, with the container's last oom event), it is decided from
the event where that says enough (agent/death_events.py), else the state machine asks
for an inspect (`InspectDeath`, the answer fed in as `ContainerDied`) or for a pass.
The event is handled where it arrives, in the event stream's callback: no task, no
engine call and no pass stands between a die and the restart's pod task.

The session (agent/session.py) feeds its events through `handle` too, and
performs the session instructions it gets back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Literal

from agent.claim_volumes import ClaimOrders
from agent.containers import container_config
from agent.deaths import DIE_RECHECK_FOR, DIE_RECHECK_SECONDS, pending_deaths
from agent.fencing import FencePolicy
from agent.logs import PreviousLogs
from agent.model import Assignments, ContainerSpec, PodAssignment, PodStatusReport
from agent.poddns import ResolvConf
from agent.prober import run_probe
from agent.probes import ProbeResult, ProbeTarget
from agent.restart_path import RestartPath, restart_path
from agent.restart_timeline import DeathSeen, RestartTimeline
from agent.runtime.port import (
    ContainerConfig,
    ContainerConfigError,
    ContainerCreateError,
    ContainerInfo,
    ImagePullError,
    Runtime,
    RuntimeEvent,
    RuntimeFailure,
)
from agent.security import needs_image_user, non_root_refusal
from agent.state.events import (
    ActionFailed,
    AssignmentsReceived,
    ContainerDied,
    ContainerRan,
    ContainersListed,
    DieSeen,
    Event,
    FenceRequested,
    ImageReady,
    InspectDeath,
    Instruction,
    ListFailed,
    Log,
    PodActionsFinished,
    ProbeFinished,
    Publish,
    Relist,
    RunPodActions,
    RunProbe,
)
from agent.state.machine import AgentState
from agent.sync import (
    Action,
    PullImage,
    RemoveContainer,
    RestartContainer,
    StartContainer,
    StopContainer,
)
from agent.volume_files import DEFAULT_ROOT, VolumeFiles
from kernel.clock import Clock

log = logging.getLogger("pinnace.agent")

Checker = Callable[[ProbeTarget], Awaitable[ProbeResult]]
# Die events remembered for the restart spans (a bound: most are consumed at once).
_DIED_SEEN_MAX = 1024
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS["error"] = logging.ERROR


def pulls_for(pull: PullImage, then: Action) -> bool:
    """Whether `then` is the start `pull` is for, and may be created before the pull
    ends: the container's config does not read the image (runAsNonRoot checks its user)."""
    return (
        isinstance(then, StartContainer)
        and (then.pod, then.container, then.spec.image) == (pull.pod, pull.container, pull.image)
        and not needs_image_user(then.spec.security)
    )


async def wait_event(clock: Clock, event: asyncio.Event, timeout: float) -> bool:
    """Waits until `event` is set or `timeout` seconds of `clock` pass; whether it is set."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, sleeper):
            task.cancel()
        await asyncio.gather(waiter, sleeper, return_exceptions=True)
    return event.is_set()


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        host_ip: str,
        clock: Clock,
        publish: Callable[[list[PodStatusReport]], None],
        relist_interval: float = 1.0,
        check: Checker | None = None,
        fence: FencePolicy | None = None,
        validate: bool = False,
        files: VolumeFiles | None = None,
        previous: PreviousLogs | None = None,
        claims: ClaimOrders | None = None,
        resolv: Callable[[PodAssignment], ResolvConf] | None = None,
    ) -> None:
        self._runtime = runtime
        # The log of each restarted container's last run, for `logs --previous`.
        self._previous = previous
        # The claim sizes the assignment set asks for (agent/claim_volumes.py grows them).
        self._claims = claims
        # A pod's resolv.conf (agent/poddns.py); without one, the engine's default.
        self._resolv = resolv or (lambda assignment: ResolvConf())
        # Where configMap/secret volumes' files are kept (a tmpfs by default).
        self._files = files or VolumeFiles(DEFAULT_ROOT, runtime.node)
        # How a probe is performed; tests inject their own.
        self._check: Checker = check or (lambda target: run_probe(target, runtime))
        self._clock = clock
        self._host_ip = host_ip
        self._publish = publish
        self._relist_interval = relist_interval
        self.state = AgentState(host_ip, fence, validate=validate)
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._probe_tasks: set[asyncio.Task[None]] = set()
        # Die events being decided from their container alone (inspect, then ContainerDied).
        self._death_tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # Containers whose die event came before the engine's list showed them exited.
        self._dying: dict[str, float] = {}
        # Each container's last die event as met here, and the restarts whose running
        # state is not published yet: the spans of agent/restart_timeline.py.
        self._died_seen: dict[str, DeathSeen] = {}
        # Each container's last oom event (engine time): a die that follows it in the same
        # run was the kernel's OOM kill (agent/death_events.py).
        self._oom_at: dict[str, float] = {}
        self._unreported: dict[str, RestartTimeline] = {}
        self._observed_once = asyncio.Event()
        self._fence_cleared = asyncio.Event()
        # Container starts (and restarts) under way, and set while there are none: what
        # the session's usage sample waits out (agent/usage.py usage_hold).
        self._starting = 0
        self._starts_quiet = asyncio.Event()
        self._starts_quiet.set()

    @property
    def fenced(self) -> bool:
        return self.state.fenced

    # -- feeding the state machine ----------------------------------------------------------

    def handle(self, *events: Event) -> list[Instruction]:
        """Feeds events to the state machine and performs the pod instructions; returns
        every instruction (the session performs its own)."""
        instructions = self.state.handle(*events)
        for instruction in instructions:
            match instruction:
                case RunPodActions():
                    task = asyncio.create_task(
                        self._execute(instruction.pod, instruction.actions),
                        name=f"pod-{instruction.pod}",
                    )
                    self._busy[instruction.pod] = task
                case InspectDeath():
                    log.debug(
                        "inspecting died container %s: %s",
                        instruction.container_id[:12],
                        instruction.why,
                    )
                    task = asyncio.create_task(
                        self._died(instruction.container_id),
                        name=f"died-{instruction.container_id[:12]}",
                    )
                    self._death_tasks.add(task)
                    task.add_done_callback(self._death_tasks.discard)
                case RunProbe():
                    probe = asyncio.create_task(
                        self._probe(instruction.target), name=f"probe-{instruction.target.key}"
                    )
                    self._probe_tasks.add(probe)
                    probe.add_done_callback(self._probe_tasks.discard)
                case Publish():
                    self._publish(list(instruction.reports))
                    if self._unreported:
                        self._log_reported(instruction.reports)
                case Relist():
                    self._wake.set()
                case Log():
                    log.log(_LEVELS[instruction.level], "%s", instruction.message)
        if self.state.pods.observed_once:
            self._observed_once.set()
        if self.state.pods.fence_cleared:
            self._fence_cleared.set()
        else:
            self._fence_cleared.clear()
        return instructions

    def set_assignments(self, assignments: Assignments, reset_revision: bool = False) -> bool:
        """Applies a complete assignment set unless it is older than the one applied.

        `reset_revision` is for the first set of a new session: a restarted master may
        count revisions from scratch. Returns whether the set was applied.
        """
        done = self.handle(AssignmentsReceived(assignments, reset_revision, self._clock.now()))
        applied = any(isinstance(i, Relist) for i in done)
        if applied:
            # Before any container of these pods is made: their files are in place.
            self._files.sync(assignments.pods)
            if self._claims is not None:
                self._claims.set_sizes(assignments.pods)
        return applied

    def fence(self, reason: str) -> None:
        """Stops every pod of this node (the master may be running them elsewhere)."""
        self.handle(FenceRequested(reason))

    def wake(self) -> None:
        self._wake.set()

    async def wait_fence_cleared(self, timeout: float) -> bool:
        """While fenced, waits until every container is gone, so the session re-registers
        (and the node turns Ready) only after its stale copies have stopped."""
        if not self.fenced:
            return True
        return await wait_event(self._clock, self._fence_cleared, timeout)

    @property
    def starting(self) -> int:
        """How many container starts (or restarts) are under way."""
        return self._starting

    async def wait_starts_quiet(self, timeout: float) -> bool:
        """Waits until no container start is under way, `timeout` seconds at most."""
        return await wait_event(self._clock, self._starts_quiet, timeout)

    async def wait_observed(self, timeout: float) -> bool:
        """Waits for the first successful container list (so registration can carry it)."""
        return await wait_event(self._clock, self._observed_once, timeout)

    async def settle(self) -> None:
        """Waits until no pod task or probe is in flight (tests step the loop: iterate,
        settle)."""
        while self._busy or self._probe_tasks or self._death_tasks:
            await asyncio.gather(
                *self._busy.values(),
                *self._probe_tasks,
                *self._death_tasks,
                return_exceptions=True,
            )

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        events = asyncio.create_task(self.watch_events(), name="runtime-events")
        try:
            while True:
                try:
                    await self.iterate()
                except Exception:
                    # A bug must not take the node down with it: log it, go on next tick.
                    log.exception("reconcile iteration failed")
                await wait_event(self._clock, self._wake, self._pause())
                self._wake.clear()
        finally:
            events.cancel()
            tasks = [events, *self._busy.values(), *self._probe_tasks, *self._death_tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _pause(self) -> float:
        """How long to wait for a wake-up: the relist interval, or less when a probe is
        due sooner or a died container is still listed alive (agent/deaths.py)."""
        base = DIE_RECHECK_SECONDS if self._dying else self._relist_interval
        due = self.state.pods.next_probe_due()
        if due is None:
            return base
        return min(base, max(0.0, due - self._clock.now()))

    async def watch_events(self) -> None:
        """Follows the engine's start/die events for ever (run() starts it; tests may)."""
        while True:
            try:
                async for event in self._runtime.events():
                    self._on_event(event)
            except RuntimeFailure as exc:
                log.debug("runtime event stream ended: %s", exc)
            await self._clock.sleep(1.0)

    def _on_event(self, event: RuntimeEvent) -> None:
        cid = event.container_id
        if event.action == "oom" and cid:
            self._oom_at[cid] = event.at or self._clock.now()
            if len(self._oom_at) > _DIED_SEEN_MAX:
                self._oom_at.pop(next(iter(self._oom_at)))
            return
        if event.action == "die" and cid:
            now = self._clock.now()
            self._died_seen[cid] = DeathSeen(event.at, now)
            if len(self._died_seen) > _DIED_SEEN_MAX:
                self._died_seen.pop(next(iter(self._died_seen)))
            if self.state.pods.decides_death(event.pod):
                done = self.handle(DieSeen(event, self._oom_at.get(cid, 0.0), now))
                if not any(isinstance(i, InspectDeath) for i in done):
                    # Decided from the event: the pod's task has the restart already.
                    self._died_seen[cid] = DeathSeen(event.at, now, now, by_event=True)
                return
            self._relist_fast(cid)
        elif event.action == "start" and not self.state.pods.start_wants_pass(event.pod):
            return
        self._wake.set()

    async def _died(self, container_id: str) -> None:
        """Decides a died container's restart from that container alone: the engine answers
        its inspect once the exit is recorded. Unanswered, a relist decides (as before)."""
        try:
            info = await self._runtime.inspect(container_id)
        except RuntimeFailure as exc:
            log.debug("inspecting died container %s failed: %s", container_id[:12], exc)
            self._relist_fast(container_id)
            self._wake.set()
            return
        if info is None or not info.dead:
            self._wake.set()  # gone, or started again meanwhile: a relist says what is there
            return
        now = self._clock.now()
        seen = self._died_seen.get(container_id)
        if seen is not None:
            self._died_seen[container_id] = replace(seen, inspected=now)
        self.handle(ContainerDied(info, now))

    def _relist_fast(self, container_id: str) -> None:
        """Lists every DIE_RECHECK_SECONDS until a list shows the container not alive."""
        self._dying[container_id] = self._clock.monotonic() + DIE_RECHECK_FOR

    async def iterate(self) -> None:
        """One pass: observe, then let the state machine decide. Public so tests can step it."""
        listed_after = self.state.pods.completions
        try:
            observed = await self._runtime.list_containers()
        except RuntimeFailure as exc:
            self.handle(ListFailed(str(exc), self._relist_interval))
            return
        if self._dying:
            self._dying = pending_deaths(self._dying, observed, self._clock.monotonic())
        self.handle(ContainersListed(tuple(observed), self._clock.now(), listed_after))

    # -- performing instructions ----------------------------------------------------------------

    async def _probe(self, target: ProbeTarget) -> None:
        try:
            result = await self._check(target)
        except Exception as exc:
            # The prober turns errors into failures; anything else is a bug, not a pass.
            log.exception("probe %s failed unexpectedly", target.key)
            result = ProbeResult(False, f"probe error: {exc}")
        self.handle(ProbeFinished(target, result))

    async def _execute(self, pod: str, actions: tuple[Action, ...]) -> None:
        try:
            index = 0
            while index < len(actions):
                action, after = actions[index], actions[index + 1 : index + 2]
                index += 1
                image_ready = None
                if isinstance(action, PullImage) and after and pulls_for(action, after[0]):
                    # The start goes now, its create beside the pull (issue 15): the
                    # runtime starts the container only once the pull has decided.
                    image_ready = self._pull_beside(action)
                    action, index = after[0], index + 1
                if not await self._perform(action, image_ready):
                    break
        finally:
            self._busy.pop(pod, None)
            self.handle(PodActionsFinished(pod))

    def _pull_beside(self, action: PullImage) -> asyncio.Future[None]:
        """The pull as a task of its own, for a StartContainer to hand to the runtime."""
        log.info("PullImage pod=%s container=%s: %s", action.pod, action.container, action.reason)
        task = asyncio.ensure_future(self._pull(action))
        # Its error is the start's to raise; one the start never got to is not logged twice.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _pull(self, action: PullImage) -> None:
        note = await self._runtime.ensure_image(action.image, action.pull_policy)
        if note:
            log.warning("pod=%s container=%s: %s", action.pod, action.container, note)
        self.handle(ImageReady(action.pod, action.container, note))

    async def _perform(self, action: Action, image_ready: Awaitable[None] | None = None) -> bool:
        """Carries out one action; False stops the rest of the pod's actions. `image_ready`:
        the pull a StartContainer waits for before its start (see _pull_beside)."""
        name = type(action).__name__
        log.info("%s pod=%s container=%s: %s", name, action.pod, action.container, action.reason)
        try:
            match action:
                case PullImage():
                    await self._pull(action)
                case StartContainer():
                    with self._start_under_way():
                        await self._start(
                            action.assignment, action.spec, action.restart_count, image_ready
                        )
                case RestartContainer():
                    with self._start_under_way():
                        await self._restart(action)
                case StopContainer():
                    await self._runtime.stop(action.container_id, action.grace_seconds)
                case RemoveContainer():
                    await self._runtime.remove(action.container_id)
        except (ImagePullError, ContainerCreateError, ContainerConfigError) as exc:
            log.warning("pod=%s container=%s: %s", action.pod, action.container, exc)
            kind: Literal["pull", "create", "config"] = (
                "pull"
                if isinstance(exc, ImagePullError)
                else "config"
                if isinstance(exc, ContainerConfigError)
                else "create"
            )
            self.handle(
                ActionFailed(action.pod, action.container, kind, str(exc), self._clock.now())
            )
            return False
        except RuntimeFailure as exc:
            log.warning(
                "%s pod=%s container=%s failed: %s", name, action.pod, action.container, exc
            )
            return False
        return True

    @contextlib.contextmanager
    def _start_under_way(self) -> Iterator[None]:
        self._starting += 1
        self._starts_quiet.clear()
        try:
            yield
        finally:
            self._starting -= 1
            if not self._starting:
                self._starts_quiet.set()

    async def _config(
        self, assignment: PodAssignment, spec: ContainerSpec, restart_count: int
    ) -> ContainerConfig:
        """What the container for `spec` is created with. ContainerConfigError:
        runAsNonRoot refuses the image."""
        image_user = ""
        if needs_image_user(spec.security):
            image_user = await self._runtime.image_user(spec.image)
        refusal = non_root_refusal(spec.security, image_user, assignment, spec.name)
        if refusal:
            raise ContainerConfigError(refusal)
        return container_config(
            self._runtime.node,
            self._host_ip,
            assignment,
            spec,
            restart_count,
            self._files.root,
            self._resolv(assignment),
            image_user,
        )

    async def _start(
        self,
        assignment: PodAssignment,
        spec: ContainerSpec,
        restart_count: int,
        image_ready: Awaitable[None] | None = None,
    ) -> None:
        """Creates and starts a container for `spec` (after `image_ready`, the pull)."""
        try:
            config = await self._config(assignment, spec, restart_count)
        except BaseException:
            if image_ready is not None:
                await image_ready  # a failed pull is the news, as when it went first
            raise
        info = await self._runtime.create_and_start(config, image_ready)
        self._started(assignment, spec, info)

    def _started(self, assignment: PodAssignment, spec: ContainerSpec, info: ContainerInfo) -> None:
        log.info(
            "started pod=%s container=%s id=%s ports=%s",
            assignment.name,
            spec.name,
            info.id[:12],
            info.ports or "-",
        )
        if info.sandbox_note:
            # Made without the sandbox its pod wanted (no sandbox image on the node): the
            # container's image note, which the master shows as a Warning event of the pod.
            self.handle(ImageReady(assignment.name, spec.name, info.sandbox_note))

    async def _restart(self, action: RestartContainer) -> None:
        """Runs the dead container again: started again as it is where agent/restart_path.py
        allows it (its log for --previous read afterwards, up to the restart), otherwise
        replaced by a new container. A container that will not start again is replaced.
        A replacement is reported running as soon as it runs (`_ran`); the dead run's log is
        read only then, and the old container removed after it: neither is on the way to
        running again nor to the master's knowing it (on a busy engine the log read beside
        the create and start made them slower, and the removal took up to 0.16 s at load 9)."""
        decided = self._clock.now()
        config = await self._config(action.assignment, action.spec, action.restart_count)
        dead = action.dead
        if dead is not None and not dead.standby_id:
            # A standby made since the last listing: the runtime knows it at once, and one
            # being made right now is waited for (Runtime.standby_soon).
            dead = replace(dead, standby_id=await self._runtime.standby_soon(dead))
        path = (
            restart_path(dead, config, action.immediate)
            if dead is not None
            else RestartPath(False, "the dead container was not listed")
        )
        how = "in place"
        if path.in_place:
            try:
                info = await self._runtime.restart_in_place(action.container_id, config.name)
            except RuntimeFailure as exc:
                how = f"replaced (starting it again failed: {exc})"
            else:
                self._keep_log(action, until=info.restarted_at)
                self._ran(action, info, how, decided)
                return
        else:
            how = f"replaced ({path.why_not})"
        await self._runtime.replace(
            action.container_id,
            config,
            before_remove=lambda: self._keep_log(action, until=0.0),
            ran=lambda info: self._ran(action, info, how, decided),
        )

    def _ran(self, action: RestartContainer, info: ContainerInfo, how: str, decided: float) -> None:
        """The restarted container runs: logged with its spans and reported at once."""
        self._started(action.assignment, action.spec, info)
        timeline = RestartTimeline(
            action.pod,
            action.container,
            info.id,
            how,
            death=self._died_seen.pop(action.container_id, DeathSeen()),
            decided=decided,
            started_at=info.started_at,
            running=self._clock.now(),
        )
        self._unreported[info.id] = timeline
        log.info("%s", timeline.describe())
        # Reported running now, not after the list that follows this pod's task.
        self.handle(ContainerRan(info, action.container_id, self._clock.now()))

    def _keep_log(self, action: RestartContainer, until: float) -> asyncio.Future[None] | None:
        if self._previous is None:
            return None
        return self._previous.start_capture(
            self._runtime, action.container_id, action.restart_count - 1, until
        )

    def _log_reported(self, reports: tuple[PodStatusReport, ...]) -> None:
        """Logs when the restarted containers' running state was handed to the session."""
        now = self._clock.now()
        for report in reports:
            for status in report.containers:
                timeline = self._unreported.get(status.container_id)
                if timeline is not None and status.state == "running":
                    del self._unreported[status.container_id]
                    log.info("%s", timeline.reported_line(now))
