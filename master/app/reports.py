"""Node reports: what a pod status report from an agent does to the cluster.

An agent reports its pods when it registers (`adopted`: it found them running
after a restart) and whenever one changes. A report counts only for the pod's
current assignment: the same node and the same epoch. Everything else — a pod
the node does not hold, an older epoch, a pod already replaced — changes
nothing; the assignment set the agent gets next tells it what to remove.

A report with reason Fenced says the agent stopped a pod on losing its lease.
It becomes one Fenced event per node, pod and epoch — but only when the node
holds or held that assignment (checked before anything is recorded), so a node
cannot forge events about pods it never ran. The Fenced events said are forgotten
when memory is reloaded from the store (it may have dropped them): the agent's
resent report says one again unless the reloaded log holds it. Node notices sent
again (`again`: the agent cannot know whether the master stored them) likewise.
Every event a node's reports cause passes a per-node rate limit
(master/app/ratelimit.py).

A report that leaves the pod's bridge address (`pod_ip`) out while it describes the same
running containers at the same published ports keeps the address the pod had
(`kept_pod_ip`): agents before 3863697 registered so after a restart, and the master's
HAProxy reaches pods at that address (master/lb/endpoints.py `lb_address`), so the flip
there and back took every slot of the node's pods out of service for a health check.

`decide_report` is the pure state machine (pod, report -> actions);
`NodeReports` keeps the little memory it needs (assignments recently taken
from nodes, Fenced events already said) and applies the actions to the state.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from kernel.clock import Clock
from master.app.podnetwork import reached_key
from master.app.proxyproblems import Reported, record_proxy_problems
from master.app.ratelimit import EventLimiter
from master.model import (
    DEFAULT_NAMESPACE,
    Node,
    Pod,
    PodPhase,
    PodStatus,
    StoredObject,
    evolve,
    key_name,
    key_of,
)
from master.state import ClusterState
from master.writers import KUBELET

log = logging.getLogger(__name__)

# The pod reason an agent reports for a pod it stopped by fencing itself.
FENCED = "Fenced"
# Assignments taken from nodes (evicted, deleted, removed) remembered for Fenced
# reports, and Fenced events already recorded; the oldest are forgotten first.
MAX_REMEMBERED = 10_000
# A node reporting more refused Service ports than this is cut short (no Service has more).
MAX_PROXY_PROBLEMS = 1000
# Nodes one report may name as unreached (the rest of a longer list are left out).
MAX_POD_ROUTES = 10000
BACKOFF_REASONS = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull")


@dataclass(frozen=True, slots=True)
class PodReport:
    """One pod as an agent reports it, already converted and clamped at the edge."""

    pod_name: str
    epoch: int
    status: PodStatus = field(default_factory=PodStatus)
    # The agent no longer runs it (stopped on order, or fenced).
    removed: bool = False
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class PutPod:
    pod: Pod


@dataclass(frozen=True, slots=True)
class RemovePod:
    name: str


@dataclass(frozen=True, slots=True)
class RecordEvent:
    name: str
    reason: str
    message: str
    type: str = "Normal"
    # Who says so: the master, or (for Fenced) the node itself.
    source: str = "master"


ReportAction = PutPod | RemovePod | RecordEvent


def decide_report(
    node_name: str, report: PodReport, pod: Pod | None, adopted: bool
) -> list[ReportAction]:
    """What a report about the node's current assignment changes (pure).

    Fenced events are not decided here: they need the memory of past
    assignments (see NodeReports).
    """
    if pod is None or pod.node_name != node_name or report.epoch != pod.epoch:
        return []
    name = pod.meta.name
    if report.removed:
        if pod.deletion_requested_at:
            return [
                RemovePod(name),
                RecordEvent(name, "Stopped", f"pod {name} stopped on {node_name}"),
            ]
        if report.status.reason == FENCED and pod.status.reason != FENCED:
            status = replace(pod.status, ready=False, reason=FENCED, message=report.status.message)
            return [PutPod(replace(pod, status=status))]
        return []
    actions: list[ReportAction] = []
    status = kept_pod_ip(pod.status, report.status)
    if adopted and status.phase == PodPhase.RUNNING:
        actions.append(RecordEvent(name, "Adopted", f"agent on {node_name} kept running {name}"))
    if status == pod.status:
        return actions
    actions.extend(transition_events(pod, status))
    actions.append(PutPod(evolve(pod, status=status)))
    return actions


def _running_ids(status: PodStatus) -> tuple[str, ...]:
    return tuple(c.container_id for c in status.container_statuses if c.state == "running")


def kept_pod_ip(old: PodStatus, new: PodStatus) -> PodStatus:
    """`new`, with `old`'s pod_ip where `new` has none but is the same running pod: the same
    running containers (by id), node address and published ports (see the module doc). A
    container started again, a port published anew or a pod no longer running take the
    report as it is."""
    if new.pod_ip or not old.pod_ip or new.phase != PodPhase.RUNNING:
        return new
    ids = _running_ids(new)
    if not ids or ids != _running_ids(old):
        return new
    if (new.host_ip, new.port_map) != (old.host_ip, old.port_map):
        return new
    return replace(new, pod_ip=old.pod_ip)


def transition_events(pod: Pod, new: PodStatus) -> list[RecordEvent]:
    """Started, Restarted, PullFallback and BackOff: what a user wants to see about a status
    change."""
    name = pod.meta.name
    events = []
    if new.phase == PodPhase.RUNNING and pod.status.phase != PodPhase.RUNNING:
        events.append(RecordEvent(name, "Started", f"pod {name} is running"))
    old = {c.name: c for c in pod.status.container_statuses}
    for c in new.container_statuses:
        before = old.get(c.name)
        if c.restart_count > (before.restart_count if before else 0):
            events.append(
                RecordEvent(
                    name,
                    "Restarted",
                    f"container {c.name} restarted (restart {c.restart_count})",
                    "Warning",
                )
            )
        if c.image_note and c.image_note != (before.image_note if before else ""):
            events.append(
                RecordEvent(name, "PullFallback", f"container {c.name}: {c.image_note}", "Warning")
            )
        if c.reason in BACKOFF_REASONS and (before is None or before.reason != c.reason):
            events.append(
                RecordEvent(
                    name, "BackOff", f"container {c.name}: {c.reason}: {c.message}", "Warning"
                )
            )
    return events


def fenced_event(node_name: str, report: PodReport) -> RecordEvent:
    name = report.pod_name
    return RecordEvent(
        name,
        FENCED,
        f"node {node_name} stopped its copy of {name}: {report.status.message[:512]}",
        "Warning",
        source=node_name,
    )


class NodeReports:
    """Applies node reports to the ClusterState, with the memory Fenced events need."""

    def __init__(self, state: ClusterState, clock: Clock) -> None:
        self._state = state
        self._clock = clock
        self._limiter = EventLimiter()
        # (node, pod, epoch) of assignments that ended on the master's side.
        # (OrderedDicts: `_remember` forgets the oldest in O(1).)
        self._past: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._fenced_said: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        state.subscribe(self._on_change)
        # A reload may have dropped the Fenced events said (queued, not yet stored): the
        # agents' resent reports say them again unless the reloaded log holds them.
        state.on_replaced(self._fenced_said.clear)

    def _on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        if deleted and isinstance(obj, Pod) and obj.node_name:
            _remember(self._past, (obj.node_name, key_of(obj), obj.epoch))

    def held(self, node_name: str, pod_key: str, epoch: int) -> bool:
        """Whether the node holds or recently held this assignment (`pod_key`: "ns/name")."""
        pod = self._state.get_key("Pod", pod_key)
        if isinstance(pod, Pod) and pod.node_name == node_name and pod.epoch == epoch:
            return True
        return (node_name, pod_key, epoch) in self._past

    def apply(self, node_name: str, report: PodReport, adopted: bool) -> None:
        actions: list[ReportAction] = []
        ns = report.namespace
        key = (node_name, key_name("Pod", ns, report.pod_name), report.epoch)
        if report.status.reason == FENCED and key not in self._fenced_said and self.held(*key):
            # Said even when the pod was replaced meanwhile: it explains the stop.
            _remember(self._fenced_said, key)
            event = fenced_event(node_name, report)
            if not self._state.has_event(
                "Pod", event.name, ns, event.reason, event.message, event.source
            ):
                actions.append(event)
        pod = self._state.pod(report.pod_name, ns)
        actions.extend(decide_report(node_name, report, pod, adopted))
        self._execute(node_name, ns, actions)

    def goodbye(self, node_name: str, reason: str) -> None:
        """The node's agent is stopping and said it will be back."""
        why = f" ({clean_text(reason, 128)})" if reason else ""
        message = (
            f"the agent on {node_name} is stopping and will be back{why}; its pods keep "
            f"running and stay for the grace"
        )
        self._node_event(node_name, "NodeRestarting", message, "Normal")

    def notice(self, node_name: str, reason: str, message: str, again: bool = False) -> None:
        """Something the node's agent decided on its own, shown as a node event. `again`: the
        agent sent it before and sends it again because this master may have lost it (a
        reload, a new session): recorded only when the log holds no such event."""
        reason, message = clean_reason(reason), clean_text(message, 512)
        if again and self._state.has_event(
            "Node", node_name, DEFAULT_NAMESPACE, reason, message, node_name
        ):
            return
        self._node_event(node_name, reason, message, "Normal")

    def proxy_problems(self, node_name: str, reported: Sequence[Reported]) -> None:
        """The Service ports the node's proxy cannot serve now (its whole list)."""
        cleaned = [
            Reported(
                clean_text(r.namespace, 63),
                clean_text(r.service, 63),
                clean_text(r.port, 63),
                clean_reason(r.reason),
                clean_text(r.message, 512),
            )
            for r in reported[:MAX_PROXY_PROBLEMS]
        ]
        record_proxy_problems(self._state, node_name, cleaned, self._clock.now())

    def pod_routes(self, node_name: str, ready: str, unreached: Sequence[tuple[str, str]]) -> None:
        """The node's host-gw report: its pod subnet once its rules are in place, and the
        (node, pod subnet) pairs its machine cannot reach; kept on its Node (written only
        when it changed) for master/app/podnetwork.py."""
        node = self._state.get("Node", node_name)
        if not isinstance(node, Node):
            return
        keys = tuple(
            sorted({reached_key(clean_text(n, 253), clean_text(c, 43)) for n, c in unreached})
        )[:MAX_POD_ROUTES]
        ready = clean_text(ready, 43)
        if (ready, keys) != (node.pod_cidr_ready, node.pod_unreached):
            changed = replace(node, pod_cidr_ready=ready, pod_unreached=keys)
            self._state.put_by(KUBELET, changed, "status")

    def _node_event(self, node_name: str, reason: str, message: str, type_: str) -> None:
        if self._limiter.allow(node_name, f"node/{reason}", self._clock.monotonic()):
            self._state.record_event("Node", node_name, reason, message, type_, node_name)

    def _execute(self, node_name: str, ns: str, actions: list[ReportAction]) -> None:
        """Carry out what a report about one pod of namespace `ns` decided."""
        now = self._clock.monotonic()
        for action in actions:
            if isinstance(action, PutPod):
                # The pod's status as the agent saw it: the kubelet's write on Kubernetes.
                self._state.put_by(KUBELET, action.pod, "status")
            elif isinstance(action, RemovePod):
                self._state.remove("Pod", action.name, ns)
            elif self._limiter.allow(node_name, f"{ns}/{action.name}", now):
                self._state.queue_event(
                    "Pod",
                    action.name,
                    action.reason,
                    action.message,
                    action.type,
                    action.source,
                    namespace=ns,
                    writer=KUBELET,
                )
            elif self._limiter.dropped % 1000 == 1:
                log.warning(
                    "events caused by node %s are rate limited (%d dropped so far)",
                    node_name,
                    self._limiter.dropped,
                )


def clean_reason(reason: str) -> str:
    """An event reason as Kubernetes spells them: CamelCase letters and digits, bounded."""
    kept = "".join(c for c in reason[:64] if c.isascii() and c.isalnum())
    return kept or "NodeNotice"


def clean_text(text: str, limit: int) -> str:
    """Text from a node, bounded, without control characters (it reaches terminals)."""
    return "".join(c if c.isprintable() else " " for c in text[:limit])


def _remember(memory: OrderedDict[tuple[str, str, int], None], key: tuple[str, str, int]) -> None:
    """Remember `key`, forgetting the oldest beyond MAX_REMEMBERED. An OrderedDict's
    `popitem(last=False)`, not a dict's `next(iter(d))`: that skips the holes the earlier
    deletions left at the dict's front, ~17 us at 10,000 entries (ratelimit.py)."""
    memory[key] = None
    if len(memory) > MAX_REMEMBERED:
        memory.popitem(last=False)
