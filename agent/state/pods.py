"""The pod half of the agent's state machine: assignments, containers, backoff, fencing.

State: the master's latest assignment set (None until the first one: until then
the agent only observes, so a restarted agent never touches the containers it is
about to adopt), per-container backoff, the pods whose actions are in flight,
probe states, and the bookkeeping behind reports of pods that are gone (removed
after the master dropped them, Fenced after a fence stopped them).

A container list (`ContainersListed`) is the heartbeat of this half: it plans
probes, runs the pure `sync` over the pods that are not busy, hands each pod's
actions out as one `RunPodActions`, and publishes the full report set. Results
come back as events: `PodActionsFinished`, `ActionFailed` (backoff),
`ProbeFinished`. Task completions are numbered, so a list requested before a
pod's task finished is not trusted for that pod (it would start the container a
second time).

A container's die event (`DieSeen`) is decided without a list: from the event itself
where it says all an inspect would and the restart goes at once (agent/death_events.py),
else from the container as inspected (`InspectDeath`, then `ContainerDied`); the last
list, with the died container in its place, is synced for its pod alone (agent/deaths.py).
Only a pod the last list can be trusted for is decided so (assigned, not fenced, no
action in flight or finished since that list); any other die asks for a relist, as
every die did before. The died run's probe verdicts go with it
(a run started again in place keeps the container's id). When the pod's task has the
container running again (`ContainerRan`), that run is put in the last list and reported
at once, before the list that follows the task.

Fencing: `FenceRequested` stops every pod; an assignment set lifts the fence
only once the teardown was dispatched, so a quick reconnect cannot race the
stop; `fence_cleared` turns true once a list finds no container left, and the
session re-registers only then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.death_events import death_from_event
from agent.deaths import with_death, with_run
from agent.model import PodAssignment, PodStatusReport
from agent.probes import (
    ProbeKey,
    ProbeState,
    next_due,
    plan_probes,
    record_result,
    unhealthy_containers,
)
from agent.runtime.port import ContainerInfo
from agent.state.events import (
    ActionFailed,
    AssignmentsReceived,
    ContainerDied,
    ContainerRan,
    ContainersListed,
    DieSeen,
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
from agent.status import adopted_status, fenced_status, pod_status, removed_status
from agent.sync import (
    Action,
    ContainerBackoff,
    ContainerKey,
    note_seen,
    record_config_failure,
    record_image_note,
    record_pull_failure,
    record_start_failure,
    sync,
)

# How long a removed=true (or Fenced) report for a pod the master no longer assigns stays.
REMOVED_REPORT_TTL = 60.0
FENCED_PREFIX = "Fenced: "


@dataclass(slots=True)
class PodsState:
    host_ip: str
    desired: dict[str, PodAssignment] | None = None
    revision: int | None = None
    backoff: dict[ContainerKey, ContainerBackoff] = field(default_factory=dict)
    probes: dict[ProbeKey, ProbeState] = field(default_factory=dict)
    # Containers last reported ready: after an agent restart they stay ready until their
    # first probe answers (see agent/probes.py), instead of flapping.
    reported_ready: frozenset[str] = frozenset()
    busy: set[str] = field(default_factory=set)
    completions: int = 0
    completed_at: dict[str, int] = field(default_factory=dict)
    # Pods found but not assigned (being torn down) -> their highest epoch.
    orphans: dict[str, int] = field(default_factory=dict)
    # Pods gone after the master dropped them -> (epoch, since): reported removed.
    removed: dict[str, tuple[int, float]] = field(default_factory=dict)
    # Pods whose containers a fence stopped -> (epoch, why, since): reported Fenced until
    # the master assigns the pod here again, or for REMOVED_REPORT_TTL.
    fenced: dict[str, tuple[int, str, float]] = field(default_factory=dict)
    fence_reason: str = ""
    # A fence is lifted by fresh assignments only after its teardown was dispatched.
    fence_dispatched: bool = False
    lift_fence: bool = False
    # While fenced: a list found no container left (the teardown is done).
    fence_cleared: bool = False
    observed_once: bool = False
    runtime_down: bool = False
    # The last list, as die events have changed it since (see ContainerDied).
    observed: tuple[ContainerInfo, ...] = ()

    # -- events ---------------------------------------------------------------------------

    def assignments(self, event: AssignmentsReceived) -> list[Instruction]:
        a = event.assignments
        if not event.first_of_session and self.revision is not None and a.revision < self.revision:
            return []
        self.revision = a.revision
        before = self.desired
        self.desired = {p.name: p for p in a.pods}
        # Assigned (again): no longer an orphan, no longer reported removed.
        for name in self.desired:
            self.orphans.pop(name, None)
            self.removed.pop(name, None)
        out: list[Instruction] = [
            Log("info", f"assignments revision {a.revision}: {len(a.pods)} pods"),
            *self._start_new(before, event.now),
            Relist(),
        ]
        if self.fence_reason:
            if self.fence_dispatched:
                out.append(self._lift())
            else:
                self.lift_fence = True
        return out

    def _start_new(
        self, before: dict[str, PodAssignment] | None, now: float | None
    ) -> list[Instruction]:
        """Pods new to this node start from the last list, without waiting for the relist
        (a container list, 5-9 ms on a loaded engine, on the way from apply to running:
        issue 15). The last list is the truth for them: a container of a pod appears only
        when this agent's own task for that pod makes it, and such a pod is busy or has
        finished since that list (held, as in _dispatch). A pod the last list shows
        containers of (an orphan being torn down, assigned again) waits for the relist, as
        does everything while fenced, before the first list, and on the node's first set
        (an agent adopting what a previous run left)."""
        if now is None or before is None or self.fence_reason or not self.observed_once:
            return []
        held = self.busy | set(self.completed_at) | {c.pod for c in self.observed}
        new = {
            name: pod
            for name, pod in (self.desired or {}).items()
            if name not in before and name not in held
        }
        if not new:
            return []
        backoff = {k: b for k, b in self.backoff.items() if k[0] in new}
        result = sync(new, [], now, backoff)
        self.backoff = {k: b for k, b in self.backoff.items() if k[0] not in new} | result.backoff
        return self._run(result.actions)

    def _lift(self) -> Log:
        self.fence_reason = ""
        self.lift_fence = False
        self.fence_dispatched = False
        self.fence_cleared = False
        return Log("info", "fresh assignments from the master: lifting the fence")

    def fence(self, reason: str) -> list[Instruction]:
        out: list[Instruction] = []
        if not self.fence_reason:
            out.append(Log("warning", f"fencing: stopping every pod of this node: {reason}"))
        self.fence_reason = FENCED_PREFIX + reason
        self.fence_dispatched = False
        self.lift_fence = False
        self.fence_cleared = False
        return [*out, Relist()]

    def list_failed(self, event: ListFailed) -> list[Instruction]:
        if self.runtime_down:
            return []
        self.runtime_down = True
        return [Log("error", f"{event.message}; retrying every {event.retry_seconds:g}s")]

    def listed(self, event: ContainersListed) -> list[Instruction]:
        out: list[Instruction] = []
        if self.runtime_down:
            out.append(Log("info", "container runtime reachable again"))
            self.runtime_down = False
        self.observed_once = True
        observed, now = event.observed, event.now
        self.observed = observed
        if self.desired is None and not self.fence_reason:
            self.backoff = note_seen(self.backoff, observed)
        # Done only when nothing runs and nothing is being started any more.
        if self.fence_reason and not observed and not self.busy:
            self.fence_cleared = True
        out += self._plan_probes(observed, now)
        if self.desired is not None or self.fence_reason:
            out += self._dispatch(observed, now, event.listed_after)
        out.append(self._publish(observed, now))
        return out

    def decides_death(self, pod: str) -> bool:
        """Whether a die of a container of `pod` would be decided from that container alone
        (else a relist decides it): the last list is trusted for the pod."""
        return (
            self.observed_once
            and self.desired is not None
            and not self.fence_reason
            and pod in self.desired
            and pod not in self.busy
            and pod not in self.completed_at
        )

    def start_wants_pass(self, pod: str) -> bool:
        """Whether a container start event of `pod` calls for a pass. Not while the pod's
        own task runs: the task made that start, and its end asks for the pass that lists
        the container. One taken meanwhile decides nothing for the busy pod, and in a burst
        of starts (apply -> N) it was one more list, and inspects, on an engine whose every
        call queues behind the others' creates and starts (issue 15)."""
        return pod not in self.busy

    def died(self, event: ContainerDied) -> list[Instruction]:
        """Syncs the died container's pod from the last list with the container as inspected
        in its place, and publishes; a relist decides where that cannot be trusted."""
        pod = event.info.pod
        observed = with_death(self.observed, event.info) if self.decides_death(pod) else None
        if observed is None or self.desired is None:
            return [Relist()]
        self.observed = observed
        now = event.now
        result = sync(
            {pod: self.desired[pod]},
            [c for c in observed if c.pod == pod],
            now,
            {k: b for k, b in self.backoff.items() if k[0] == pod},
            unhealthy=unhealthy_containers(self.probes),
        )
        self.backoff = {k: b for k, b in self.backoff.items() if k[0] != pod} | result.backoff
        # Its probes' verdicts were of the run that ended (a list drops them too): a run
        # started again in place keeps its id, and must not inherit them.
        dead = event.info.id
        self.probes = {k: s for k, s in self.probes.items() if s.container_id != dead}
        return [*self._run(result.actions), self._publish(observed, now)]

    def die_seen(self, event: DieSeen) -> list[Instruction]:
        """A die event: decided from the event and the last list where they say all an
        inspect would (agent/death_events.py), so the restart starts without an engine
        round trip; otherwise the died container is inspected (then `died`)."""
        die = event.event
        if not self.decides_death(die.pod) or self.desired is None:
            return [Relist()]
        verdict = death_from_event(die, self.observed, self.desired, self.backoff, event.oom_at)
        if verdict.died is None:
            return [InspectDeath(die.container_id, verdict.why_not)]
        return self.died(ContainerDied(verdict.died, event.now))

    def ran(self, event: ContainerRan) -> list[Instruction]:
        """A crashed container runs again (its pod's task started it): the last list with the
        new run in place of the dead one, published at once; the relist that follows the
        task decides anything else, as ever."""
        pod = event.info.pod
        if self.fence_reason or self.desired is None or pod not in self.desired:
            return []
        if not self.observed_once:
            return []
        self.observed = with_run(self.observed, event.info, event.replaced_id)
        return [self._publish(self.observed, event.now)]

    def finished(self, event: PodActionsFinished) -> list[Instruction]:
        self.busy.discard(event.pod)
        self.completions += 1
        self.completed_at[event.pod] = self.completions
        return [Relist()]

    def failed(self, event: ActionFailed) -> list[Instruction]:
        key = (event.pod, event.container)
        record = {
            "pull": record_pull_failure,
            "create": record_start_failure,
            "config": record_config_failure,
        }[event.kind]
        self.backoff = record(self.backoff, key, event.now, event.message)
        return []

    def image_ready(self, event: ImageReady) -> list[Instruction]:
        key = (event.pod, event.container)
        self.backoff = record_image_note(self.backoff, key, event.note)
        return []

    def probed(self, event: ProbeFinished) -> list[Instruction]:
        target, result = event.target, event.result
        pod, container, kind = target.key
        out: list[Instruction] = []
        if not result.ok:
            out.append(
                Log("debug", f"{kind} probe of pod={pod} container={container} failed: {result}")
            )
        self.probes, changed = record_result(self.probes, self.desired or {}, target, result)
        if changed:
            passing = self.probes[target.key].passing
            verdict = "passing" if passing else f"failing: {result.message}"
            out += [
                Log("info", f"pod={pod} container={container}: {kind} probe now {verdict}"),
                Relist(),
            ]
        return out

    def next_probe_due(self) -> float | None:
        return next_due(self.probes)

    # -- a pass ---------------------------------------------------------------------------

    def _plan_probes(self, observed: Sequence[ContainerInfo], now: float) -> list[Instruction]:
        # A fenced node is stopping everything: probing it would only add noise.
        desired = {} if self.fence_reason else (self.desired or {})
        self.probes, due = plan_probes(
            desired, observed, self.probes, now, self.host_ip, self.reported_ready
        )
        return [RunProbe(target) for target in due]

    def _dispatch(
        self, observed: Sequence[ContainerInfo], now: float, listed_after: int
    ) -> list[Instruction]:
        self.completed_at = {p: n for p, n in self.completed_at.items() if n > listed_after}
        held = self.busy | set(self.completed_at)
        desired = {n: a for n, a in (self.desired or {}).items() if n not in held}
        backoff = {k: b for k, b in self.backoff.items() if k[0] not in held}
        result = sync(
            desired,
            [c for c in observed if c.pod not in held],
            now,
            backoff,
            self.fence_reason,
            unhealthy_containers(self.probes),
        )
        self.backoff = {k: b for k, b in self.backoff.items() if k[0] in held} | result.backoff
        out = self._run(result.actions)
        if self.fence_reason:
            assigned = self.desired or {}
            why = self.fence_reason.removeprefix(FENCED_PREFIX)
            for c in observed:
                epoch = assigned[c.pod].epoch if c.pod in assigned else c.epoch
                self.fenced.setdefault(c.pod, (epoch, why, now))
            if not held:
                self.fence_dispatched = True
                if self.lift_fence:
                    out += [self._lift(), Relist()]
        return out

    def _run(self, actions: Sequence[Action]) -> list[Instruction]:
        """Each pod's actions as one task; the pod is busy until it finishes."""
        by_pod: dict[str, list[Action]] = {}
        for action in actions:
            by_pod.setdefault(action.pod, []).append(action)
        out: list[Instruction] = []
        for pod, mine in by_pod.items():
            self.busy.add(pod)
            out.append(RunPodActions(pod, tuple(mine)))
        return out

    def _publish(self, observed: Sequence[ContainerInfo], now: float) -> Publish:
        reports = self._reports(observed, now)
        self.reported_ready = frozenset(
            c.container_id for r in reports for c in r.containers if c.ready
        )
        return Publish(tuple(reports))

    def _reports(self, observed: Sequence[ContainerInfo], now: float) -> list[PodStatusReport]:
        by_pod: dict[str, list[ContainerInfo]] = {}
        for c in observed:
            by_pod.setdefault(c.pod, []).append(c)
        if self.desired is None:
            return [adopted_status(p, cs, self.host_ip) for p, cs in sorted(by_pod.items())]
        desired = self.desired
        reports = [
            pod_status(a, by_pod.get(name, []), self.backoff, now, self.host_ip, self.probes)
            for name, a in sorted(desired.items())
        ]
        # Pods found but not assigned are torn down; once gone, say so for a while.
        for pod, containers in by_pod.items():
            if pod not in desired:
                self.orphans[pod] = max(c.epoch for c in containers)
        for pod in list(self.orphans):
            if pod in desired:
                del self.orphans[pod]
            elif pod not in by_pod:
                self.removed[pod] = (self.orphans.pop(pod), now)
        for pod, (epoch, since) in list(self.removed.items()):
            if pod in desired or now - since > REMOVED_REPORT_TTL:
                del self.removed[pod]
            else:
                reports.append(removed_status(pod, epoch, self.host_ip))
        return self._with_fenced(reports, by_pod, now)

    def _with_fenced(
        self,
        reports: list[PodStatusReport],
        by_pod: dict[str, list[ContainerInfo]],
        now: float,
    ) -> list[PodStatusReport]:
        """Pods stopped by a fence are reported as Fenced (not as merely Pending or Stopped)."""
        desired = self.desired or {}
        for pod, (_, _, since) in list(self.fenced.items()):
            if (pod in desired and not self.fence_reason) or now - since > REMOVED_REPORT_TTL:
                del self.fenced[pod]
        if not self.fenced:
            return reports
        kept = [r for r in reports if r.pod_name not in self.fenced]
        for pod, (epoch, why, _) in sorted(self.fenced.items()):
            kept.append(fenced_status(pod, epoch, why, self.host_ip, pod not in by_pod))
        return kept

    # -- invariants -------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """What is inconsistent in this state (empty when all is well)."""
        found: list[str] = []
        if (self.desired is None) != (self.revision is None):
            found.append("an assignment set without a revision, or the reverse")
        if (self.fence_dispatched or self.lift_fence or self.fence_cleared) and not (
            self.fence_reason
        ):
            found.append("fence bookkeeping set while not fenced")
        if self.lift_fence and self.fence_dispatched:
            found.append("a fence waiting to lift after its teardown was dispatched")
        if self.fence_reason and not self.fence_reason.startswith(FENCED_PREFIX):
            found.append(f"fence reason {self.fence_reason!r} lacks {FENCED_PREFIX!r}")
        if any(n > self.completions for n in self.completed_at.values()):
            found.append("a pod completed after the last completion")
        if self.busy & set(self.completed_at):
            found.append(
                f"pods busy again before a fresh list: {self.busy & set(self.completed_at)}"
            )
        desired = self.desired or {}
        if set(self.orphans) & set(desired):
            found.append(f"assigned pods counted as orphans: {set(self.orphans) & set(desired)}")
        if set(self.removed) & set(desired):
            found.append(f"assigned pods reported removed: {set(self.removed) & set(desired)}")
        if self.fence_reason and self.fence_cleared and self.busy:
            found.append("the fence teardown counted done while pod actions run")
        return found
