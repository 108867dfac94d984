"""What goes into the agent's state machine (events) and what comes out (instructions).

Events are facts the I/O shell observed: an assignment set arrived, a container
list came back, a pod's actions finished, a probe answered, a message or silence
from the master, a tick of the clock. Instructions are what the shell must do:
run a pod's container actions, run a probe, publish reports, send a heartbeat,
restart or re-open the session, log a line. All plain frozen data; times are
given in the events (wall `now` for backoff and reports, monotonic `mono` for
leases), so the machine never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agent.fencing import ASK_TIMEOUT, HEARS_WITHIN, PeerView
from agent.model import Assignments, PeerAddress, PodStatusReport
from agent.probes import ProbeResult, ProbeTarget
from agent.runtime.port import ContainerInfo, RuntimeEvent
from agent.sync import Action

# -- events: the pods -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssignmentsReceived:
    assignments: Assignments
    # The first set of a session: a restarted master may count revisions from scratch.
    first_of_session: bool = False
    # When the set arrived (the agent's clock): pods new to the node start from the last
    # list at once (PodsState.assignments). None: every pod waits for the relist.
    now: float | None = None


@dataclass(frozen=True, slots=True)
class FenceRequested:
    """Stop every pod of this node (decided by the lease rules, or ordered by a test)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ContainersListed:
    observed: tuple[ContainerInfo, ...]
    now: float
    # The count of finished pod tasks when the list was requested (see PodActionsFinished).
    listed_after: int


@dataclass(frozen=True, slots=True)
class ContainerDied:
    """One container's die event, with the container as the engine describes it once the
    exit is recorded (inspected): the restart is decided from it alone, without waiting
    for a list of every container (agent/deaths.py)."""

    info: ContainerInfo
    now: float


@dataclass(frozen=True, slots=True)
class DieSeen:
    """A container's die event, as the engine sent it (`oom_at`: the time of that
    container's last oom event, 0.0 none). Decided from the event alone where it says
    enough (agent/death_events.py: an immediate restart), else `InspectDeath`."""

    event: RuntimeEvent
    oom_at: float
    now: float


@dataclass(frozen=True, slots=True)
class ContainerRan:
    """A crashed container runs again (started again in place, or its replacement started;
    `info` as the engine described it after the start, `replaced_id` the dead container):
    reported at once, not after the list that follows the pod's task (agent/deaths.py)."""

    info: ContainerInfo
    replaced_id: str
    now: float


@dataclass(frozen=True, slots=True)
class ListFailed:
    message: str
    retry_seconds: float


@dataclass(frozen=True, slots=True)
class PodActionsFinished:
    pod: str


@dataclass(frozen=True, slots=True)
class ActionFailed:
    """A pull, a create or the container's configuration (runAsNonRoot) failed: the
    container backs off before the next attempt."""

    pod: str
    container: str
    kind: Literal["pull", "create", "config"]
    message: str
    now: float


@dataclass(frozen=True, slots=True)
class ImageReady:
    """A pod's image is present; `note` says why it is not a freshly pulled one ("" when
    it is: imagePullPolicy Always with no registry falls back to the present image)."""

    pod: str
    container: str
    note: str


@dataclass(frozen=True, slots=True)
class ProbeFinished:
    target: ProbeTarget
    result: ProbeResult


# -- events: the session with the master ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    mono: float
    # None: the master gave no lease (fencing has nothing to go by).
    lease_seconds: float | None
    heartbeat_seconds: float


@dataclass(frozen=True, slots=True)
class PlanGiven:
    """A heartbeat ack gave a heartbeat interval and lease (agent/state/plan.py): longer
    (the cluster grew, the master's budget was cut) or, numbered, shorter."""

    heartbeat_seconds: float
    lease_seconds: float
    # The plan's number in the session; 0: an older master's (plans only stretch).
    number: int = 0


@dataclass(frozen=True, slots=True)
class MasterHeard:
    """A message from the master arrived (an ack, an assignment set...)."""

    mono: float


@dataclass(frozen=True, slots=True)
class HeartbeatDue:
    mono: float


@dataclass(frozen=True, slots=True)
class Tick:
    """The fence watcher's tick: a gap between ticks longer than the lease means the
    process was frozen."""

    mono: float


@dataclass(frozen=True, slots=True)
class PeersUpdated:
    """The master's list of this node's witnesses."""

    peers: tuple[PeerAddress, ...]
    # Every node the master holds, this one included.
    cluster_size: int


@dataclass(frozen=True, slots=True)
class PeersAnswered:
    """The answers to one AskPeers (a peer that did not answer is there, unreachable)."""

    asked_at: float
    views: tuple[PeerView, ...]


@dataclass(frozen=True, slots=True)
class SessionEnded:
    # The master's address (for the log line).
    master: str
    # Whether the session had registered before it ended.
    registered: bool
    error: str
    # The error was "connection refused": the master process is down, not hung.
    refused: bool
    # A random number in [0, 1) for the reconnect delay's jitter.
    jitter: float
    # A follower master refused us, naming the leader (or saying one is being elected):
    # the masters are up, so come back soon rather than back off.
    redirected: bool = False
    # The master refused the registration as busy (RESOURCE_EXHAUSTED: it admits so many
    # at once) and said when to come back, in seconds (0: no such hint).
    retry_after: float = 0.0


Event = (
    AssignmentsReceived
    | FenceRequested
    | ContainersListed
    | ContainerDied
    | DieSeen
    | ContainerRan
    | ListFailed
    | PodActionsFinished
    | ActionFailed
    | ImageReady
    | ProbeFinished
    | Registered
    | PlanGiven
    | MasterHeard
    | HeartbeatDue
    | Tick
    | PeersUpdated
    | PeersAnswered
    | SessionEnded
)

# -- instructions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunPodActions:
    """Carry out these actions of one pod in order (stop at the first failure), then feed
    back PodActionsFinished."""

    pod: str
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class InspectDeath:
    """Inspect the died container and feed back ContainerDied (its die event did not say
    enough: `why`)."""

    container_id: str
    why: str


@dataclass(frozen=True, slots=True)
class RunProbe:
    target: ProbeTarget


@dataclass(frozen=True, slots=True)
class Publish:
    reports: tuple[PodStatusReport, ...]


@dataclass(frozen=True, slots=True)
class Relist:
    """Run another pass (list, decide, dispatch) soon."""


@dataclass(frozen=True, slots=True)
class SendHeartbeat:
    sequence: int
    # The heartbeat plan run (agent/state/plan.py); the master judges by its lease once told.
    plan: int = 0


@dataclass(frozen=True, slots=True)
class PlanChanged:
    """The agent runs a new heartbeat plan from now (its number, interval and lease);
    `sooner`: its interval is shorter, so the next beat is due earlier than planned (one
    new interval after the heartbeat that confirms it, sent with this instruction)."""

    number: int
    heartbeat_seconds: float
    lease_seconds: float
    sooner: bool


@dataclass(frozen=True, slots=True)
class RestartSession:
    """Drop the current session (and the message that led here) and open a fresh one."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    after: float


@dataclass(frozen=True, slots=True)
class AskPeers:
    """Ask these peers whether they hear the master; feed back PeersAnswered."""

    asked_at: float
    peers: tuple[PeerAddress, ...]
    # How long each answer may take, and how recent a peer's ack counts as hearing the
    # master (agent/fencing.py witness_times: in proportion to the lease).
    timeout: float = ASK_TIMEOUT
    hears_within: float = HEARS_WITHIN


@dataclass(frozen=True, slots=True)
class SendNotice:
    """Tell the master something users should see as an event of this node."""

    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Log:
    level: Literal["debug", "info", "warning", "error"]
    message: str


Instruction = (
    RunPodActions
    | InspectDeath
    | RunProbe
    | Publish
    | Relist
    | SendHeartbeat
    | PlanChanged
    | RestartSession
    | Reconnect
    | AskPeers
    | SendNotice
    | Log
)
