"""The agent's state machine: every decision of the node agent, no I/O (dask's WorkerState).

`AgentState.handle(*events) -> instructions` is the whole interface. The pod half
(agent/state/pods.py) owns assignments, containers, backoff, probes and the
fence's teardown; the session half (agent/state/lease.py) owns the lease,
heartbeats, the fence rules and reconnects. A fence decided by the session half
is carried out by the pod half within the same call. The worker and the session
(agent/worker.py, agent/session.py) only perform the instructions and feed the
results back as events.

With `validate=True` (the tests) every event is followed by `validate()`, which
raises InvalidState naming each broken invariant.
"""

from __future__ import annotations

from agent.fencing import FencePolicy
from agent.state.events import (
    ActionFailed,
    AssignmentsReceived,
    ContainerDied,
    ContainerRan,
    ContainersListed,
    DieSeen,
    Event,
    FenceRequested,
    HeartbeatDue,
    ImageReady,
    Instruction,
    ListFailed,
    MasterHeard,
    PeersAnswered,
    PeersUpdated,
    PlanGiven,
    PodActionsFinished,
    ProbeFinished,
    Registered,
    SessionEnded,
    Tick,
)
from agent.state.lease import LeaseState
from agent.state.pods import PodsState


class InvalidState(AssertionError):
    """The state broke an invariant: a bug in the state machine."""


class AgentState:
    def __init__(
        self,
        host_ip: str,
        fence: FencePolicy | None = None,
        validate: bool = False,
    ) -> None:
        self.pods = PodsState(host_ip)
        self.lease = LeaseState(fence or FencePolicy(enabled=False))
        self.validating = validate

    @property
    def fenced(self) -> bool:
        return bool(self.pods.fence_reason)

    def handle(self, *events: Event) -> list[Instruction]:
        out: list[Instruction] = []
        for event in events:
            out += self._one(event)
            if self.validating:
                self.validate()
        return out

    def _one(self, event: Event) -> list[Instruction]:
        fenced = self.fenced
        match event:
            case AssignmentsReceived():
                return self.pods.assignments(event)
            case FenceRequested():
                return self.pods.fence(event.reason)
            case ContainersListed():
                return self.pods.listed(event)
            case ContainerDied():
                return self.pods.died(event)
            case DieSeen():
                return self.pods.die_seen(event)
            case ContainerRan():
                return self.pods.ran(event)
            case ListFailed():
                return self.pods.list_failed(event)
            case PodActionsFinished():
                return self.pods.finished(event)
            case ActionFailed():
                return self.pods.failed(event)
            case ImageReady():
                return self.pods.image_ready(event)
            case ProbeFinished():
                return self.pods.probed(event)
            case Registered():
                return self.lease.registered_event(event)
            case PlanGiven():
                return self.lease.plan_given(event)
            case MasterHeard():
                return self._fence_if(*self.lease.heard(event, fenced))
            case HeartbeatDue():
                return self._fence_if(*self.lease.heartbeat(event, fenced))
            case Tick():
                return self._fence_if(*self.lease.tick(event, fenced))
            case PeersUpdated():
                return self.lease.peers_updated(event)
            case PeersAnswered():
                return self._fence_if(*self.lease.answered(event, fenced))
            case SessionEnded():
                return self.lease.ended(event)

    def _fence_if(self, reason: str, out: list[Instruction]) -> list[Instruction]:
        return (self.pods.fence(reason) if reason else []) + out

    def validate(self) -> None:
        problems = self.pods.problems() + self.lease.problems()
        if problems:
            raise InvalidState("; ".join(problems))
