"""Node lifecycle (pure): which nodes are Ready, Unknown or NotReady, and whose pods go.

`reconcile_nodes(nodes, signals, pods, now, settings, paused) -> actions` is
the whole decision; the controller manager only executes the actions. Inputs
per node (`NodeSignals`): the last heartbeat (monotonic, from the in-memory
lease table), whether its agent said goodbye ("stopping, will be back", on
SIGTERM) and whether its pods answered the master's own probe.

  * Ready     — a heartbeat within the lease, and its session stream open (or ended
                less than `session_grace` ago: time to reconnect).
  * Unknown   — silent, but believed alive: its agent said it will be back
                (for `node_grace`, unless its pods stop answering), or its
                agent's session ended while its pods still answer (for
                `node_grace` after the lease, while they answer). Its pods stay,
                and stay in the load balancer, whose health checks still judge
                them one by one. No new pods go there.
  * NotReady  — silent and nothing says it is alive: its pods are marked not
                ready (they leave the load balancer) and, `eviction_timeout`
                after the transition, evicted so that their deployments
                replace them on healthy nodes.

A silent node whose session stream stays open (its agent's Python hung while its gRPC
core still answers pings) gets no Unknown grace even if its containers answer: the
lease runs out, the agent fences itself within that lease (agent/fencing.py) and its
pods must run elsewhere. A frozen agent (SIGSTOP) answers no ping, so its stream ends
within 3.5 s, usually before its lease runs out (the lease counts only the master's free
time, and stretches with the cluster): while its containers answer the master's probe
the node is Unknown for `node_grace` (its pods keep serving, none runs twice), then
NotReady. (tests/integration/test_self_healing.py's partition test runs its master with
--node-grace 0, so the lease alone judges the frozen node, whichever ends first.)

Liveness has two sources. The session stream: the master's gRPC core pings every
connection (HTTP/2 keepalive, answered by the agent's gRPC core, no Python on
either side), so a killed agent (its socket closes: at once), a cut machine
(no one acknowledges the pings' TCP segments) or a frozen agent (SIGSTOP: its gRPC
core answers no ping), both within 3.5 s, ends the stream however large the
cluster; the node is NotReady `session_grace` (1 s) after that unless its
agent is back or its pods still answer (Unknown, above). The heartbeat:
stretched with the cluster's size (master/controllers/heartbeats.py), it still
catches an agent that hangs with its connection open (its gRPC core answers pings,
its Python sends nothing), within the lease. A node NotReady by
its stream is evicted only once its lease has run out too: a cut-off agent
fences itself within its lease (agent/fencing.py), so its pods are not run twice.
A lease counts only the time the master's own loop was free to read a heartbeat
(`NodeSignals.held`, master/controllers/loop_held.py) and, for a node whose stream is
open, not the master's read backlog (`NodeSignals.backlog`: how late it reads the fleet's
beats now, from their send times, master/controllers/read_backlog.py): a node is not
blamed for a heartbeat the master read late because it was busy. The larger of the two
is excused, not their sum; a node really dead meanwhile is found within its lease plus
that excuse.

Nodes NotReady by their lease alone, their stream open (a hung agent, or the master's
misjudgement), are evicted through a token bucket (master/controllers/eviction_rate.py:
a few at once, then one every 10 s, one every 100 s while more than a tenth of the nodes
are silent that way), like Kubernetes' --node-eviction-rate; their pods leave the load
balancer at once. Nodes whose stream ended (killed, cut) are evicted as before.

More than `unhealthy_threshold` of the nodes going silent at once says the
problem is the master's (or the network's), not the nodes': like Kubernetes'
--unhealthy-zone-threshold, evictions pause — silent nodes are Unknown — and
one event says why; another says when evictions resume. Nodes that were
already NotReady with no pods left (long dead, fully handled) do not count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from master.controllers.eviction_rate import LeaseEvictions
from master.model import NODE_NOT_READY, NODE_READY, NODE_UNKNOWN, Node, Pod, pod_ref

NodeCondition = Literal["Ready", "Unknown", "NotReady"]
REASONS: dict[NodeCondition, str] = {
    "Ready": NODE_READY,
    "Unknown": NODE_UNKNOWN,
    "NotReady": NODE_NOT_READY,
}


@dataclass(frozen=True, slots=True)
class NodeHealthSettings:
    lease_seconds: float = 3.0
    # How long pods stay on a NotReady node before they are replaced (0: at once).
    eviction_timeout: float = 0.0
    # How long a node believed alive (goodbye, or pods still answering) keeps its pods.
    node_grace: float = 60.0
    # Evictions pause when more than this fraction of the nodes is silent at once.
    unhealthy_threshold: float = 0.5
    # After the master starts or was stalled, every node has this long to be heard
    # from: agents reconnect with a backoff (up to 5 s, with jitter), so a lease alone
    # would be too short.
    reconnect_grace: float = 10.0
    # After a node's session stream ends (its agent died, or its link was cut and the
    # keepalive pings went unanswered), the agent has this long to reconnect before the
    # node is NotReady (its first retry comes after 0.1-0.3 s). A cut link is found
    # within 3.5 s (master/server.py), so a cut node is NotReady within 4.5 s + a pass.
    session_grace: float = 1.0


@dataclass(frozen=True, slots=True)
class NodeSignals:
    """What the master knows about a node beyond its object (monotonic times)."""

    last_seen: float | None = None
    # The lease was granted by the master (start, stall), not earned by a heartbeat.
    granted: bool = False
    # When its agent said it is stopping and will be back (None: it did not).
    goodbye_at: float | None = None
    # Its pods answered the master's probe (True), none did (False), not probed (None).
    answering: bool | None = None
    # The lease it was given at registration (None: the settings' lease).
    lease_seconds: float | None = None
    # When its session stream ended, if it has not registered again since (monotonic).
    session_ended_at: float | None = None
    # Seconds since `last_seen` during which the master's own loop was held and could read
    # no heartbeat (master/controllers/loop_held.py): not counted as the node's silence.
    held: float = 0.0
    # How late the master reads the fleet's heartbeats now (master/controllers/
    # read_backlog.py): not counted as the silence of a node whose stream is open.
    backlog: float = 0.0


def excused(signals: NodeSignals) -> float:
    """Seconds of the node's silence that are the master's, not the node's: the larger of
    the time its loop was held and, while the node's stream is open, the fleet's read
    backlog (the two measure one delay, so they are not added). A stream that ended is
    judged by its end; its lease (which a cut-off agent fences by) is not stretched by the
    backlog, so its pods are replaced as soon as before."""
    if signals.session_ended_at is not None:
        return signals.held
    return max(signals.held, signals.backlog)


@dataclass(frozen=True, slots=True)
class Moment:
    wall: float
    mono: float


@dataclass(frozen=True, slots=True)
class SetNodeCondition:
    node: str
    condition: NodeCondition
    message: str


@dataclass(frozen=True, slots=True)
class MarkPodNotReady:
    # The pod, as master.model.pod_ref names it.
    pod: str


@dataclass(frozen=True, slots=True)
class EvictPod:
    # The pod, as master.model.pod_ref names it.
    pod: str
    node: str
    # It was being stopped anyway (no Rescheduled event: nothing replaces it).
    stopping: bool


@dataclass(frozen=True, slots=True)
class SetEvictionsPaused:
    paused: bool
    message: str


@dataclass(frozen=True, slots=True)
class SetEvictionRate:
    """Evictions by lease alone go at the slow rate (`slow`) or the normal one again
    (master/controllers/eviction_rate.py)."""

    slow: bool
    message: str


NodeAction = SetNodeCondition | MarkPodNotReady | EvictPod | SetEvictionsPaused | SetEvictionRate


_NO_SIGNALS = NodeSignals()
_STAYS_READY: tuple[NodeCondition, str] = ("Ready", "")


def current_condition(node: Node) -> NodeCondition:
    if node.status.ready:
        return "Ready"
    return "Unknown" if node.status.unknown else "NotReady"


def heard_within_lease(signals: NodeSignals, now: float, settings: NodeHealthSettings) -> bool:
    """Whether the node's last heartbeat (or the master's grant) is within its lease,
    counting only the silence that is the node's (`excused`: the master's loop held, or
    its reading behind)."""
    lease = signals.lease_seconds or settings.lease_seconds
    return signals.last_seen is not None and now - signals.last_seen - excused(signals) <= lease


def session_lost(signals: NodeSignals, now: float, settings: NodeHealthSettings) -> bool:
    """Whether the node's session stream ended more than `session_grace` ago."""
    ended = signals.session_ended_at
    return ended is not None and now - ended > settings.session_grace


def alive(signals: NodeSignals, now: float, settings: NodeHealthSettings) -> bool:
    """Heard within the lease and its stream not lost: the node stays (or becomes) Ready."""
    return heard_within_lease(signals, now, settings) and not session_lost(signals, now, settings)


def alive_at(
    last_seen: float | None,
    lease_seconds: float | None,
    session_ended_at: float | None,
    now: float,
    settings: NodeHealthSettings,
) -> bool:
    """`alive` on plain numbers, for the controller's pass over every node (no signals
    object per node: at 5,000 nodes, building them was a third of a join storm's CPU)."""
    return (
        last_seen is not None
        and now - last_seen <= (lease_seconds or settings.lease_seconds)
        and (session_ended_at is None or now - session_ended_at <= settings.session_grace)
    )


def node_condition(
    node: Node, signals: NodeSignals, now: float, settings: NodeHealthSettings
) -> tuple[NodeCondition, str]:
    """A node's condition from its heartbeats, stream, goodbye and probe, with the reason."""
    name = node.meta.name
    lease = signals.lease_seconds or settings.lease_seconds
    silent_for = None if signals.last_seen is None else now - signals.last_seen
    if alive(signals, now, settings):
        return "Ready", f"node {name} is sending heartbeats"
    if silent_for is None:
        why = "no heartbeat since the master started"
    elif signals.session_ended_at is not None and silent_for <= lease:
        gone = now - signals.session_ended_at
        why = f"its session ended {gone:.1f}s ago and its agent has not reconnected"
    elif signals.granted:
        why = f"not heard from within {settings.reconnect_grace:g}s of the master's (re)start"
    elif excused(signals) > signals.held:
        why = (
            f"no heartbeat for {silent_for:.1f}s while the master reads the fleet's heartbeats "
            f"{signals.backlog:.1f}s late (lease {lease:g}s)"
        )
    elif signals.held:
        why = (
            f"no heartbeat for {silent_for:.1f}s, {silent_for - signals.held:.1f}s of it "
            f"with the master free to read one (lease {lease:g}s)"
        )
    else:
        why = f"no heartbeat for {silent_for:.1f}s (lease {lease:g}s)"
    grace = settings.node_grace
    if signals.goodbye_at is not None and signals.answering is not False:
        since = now - signals.goodbye_at
        if since < grace:
            return "Unknown", (
                f"node {name}: its agent is restarting (said so {since:.0f}s ago); "
                f"its pods stay for up to {grace:g}s while they answer"
            )
    if (
        node.status.session_lost_at
        and signals.answering is True
        and silent_for is not None
        and silent_for < lease + grace
    ):
        return "Unknown", (
            f"node {name}: {why}, its agent's session ended, but its pods still answer; "
            f"they stay for up to {grace:g}s more while they do"
        )
    if signals.goodbye_at is not None and signals.answering is False:
        why += "; its agent said it would be back, but its pods stopped answering"
    return "NotReady", f"node {name}: {why}"


def reconcile_nodes(
    nodes: Sequence[Node],
    signals: Mapping[str, NodeSignals],
    pods: Mapping[str, Sequence[Pod]],
    now: Moment,
    settings: NodeHealthSettings,
    paused: bool,
    healthy: int = 0,
    lease_evictions: LeaseEvictions | None = None,
) -> list[NodeAction]:
    """Every node's condition and what happens to its pods (see the module docstring).

    `pods` holds the pods bound to each node; nodes Ready and alive (heard from
    within the lease, stream not lost) may be left out (nothing happens to their pods).
    Such nodes may be left out of `nodes` too, counted in `healthy` instead (they
    count towards the pause, as neither silent nor long dead).

    `lease_evictions` (None: no limit) rations the evictions of nodes NotReady by their
    lease alone, their stream open and their lease not a grant of the master's
    (master/controllers/eviction_rate.py): those may be the master's misjudgement.
    """
    by_node = pods
    judged: dict[str, tuple[NodeCondition, str]] = {}
    for n in nodes:
        name = n.meta.name
        sig = signals.get(name, _NO_SIGNALS)
        lease = sig.lease_seconds or settings.lease_seconds
        if (
            n.status.ready
            and sig.session_ended_at is None
            and sig.last_seen is not None
            and now.mono - sig.last_seen - excused(sig) <= lease
        ):
            # The common case, kept cheap (it runs for every node on every pass): Ready
            # and staying Ready, so there is no transition and no message to write.
            judged[name] = _STAYS_READY
        else:
            judged[name] = node_condition(n, sig, now.mono, settings)
    # Long-dead nodes (NotReady before, no pods left) say nothing about this moment.
    counted = [
        n
        for n in nodes
        if not (current_condition(n) == "NotReady" and not by_node.get(n.meta.name))
    ]
    silent = [n for n in counted if judged[n.meta.name][0] != "Ready"]
    total = len(counted) + healthy
    # Silent with its stream open, by its lease alone: a hung agent, or the master's misjudgement.
    open_silent = sum(
        1 for n in silent if _by_lease_alone(signals.get(n.meta.name), now.mono, settings)
    )
    pause = total > 0 and len(silent) / total > settings.unhealthy_threshold
    actions: list[NodeAction] = []
    if pause != paused:
        actions.append(_pause_change(pause, len(silent), total, settings))
    # Nodes due for eviction by lease alone, rationed below: (since, name, pods).
    rationed: list[tuple[float, str, Sequence[Pod]]] = []
    for node in nodes:
        name = node.meta.name
        condition, message = judged[name]
        if pause and condition == "NotReady":
            condition = "Unknown"
            message += f"; evictions paused: {len(silent)} of {total} nodes are silent at once"
        transition = condition != current_condition(node)
        if transition:
            actions.append(SetNodeCondition(name, condition, message))
        if condition != "NotReady":
            continue
        on_node = by_node.get(name, [])
        actions.extend(MarkPodNotReady(pod_ref(p)) for p in on_node if p.status.ready)
        since = now.wall if transition else node.status.last_transition
        # NotReady by its stream alone (its lease still runs): a cut-off agent has not
        # fenced yet, so its pods leave the load balancer but are not yet replaced.
        sig = signals.get(name, _NO_SIGNALS)
        fenced = not heard_within_lease(sig, now.mono, settings)
        if fenced and now.wall - since >= settings.eviction_timeout:
            if lease_evictions is not None and on_node and _by_lease_alone(sig, now.mono, settings):
                rationed.append((since, name, on_node))
                continue
            actions.extend(
                EvictPod(pod_ref(p), name, bool(p.deletion_requested_at)) for p in on_node
            )
    if lease_evictions is not None:
        rationed.sort(key=lambda r: (r[0], r[1]))
        admitted, change = lease_evictions.admit(
            now.mono, [name for _, name, _ in rationed], open_silent, total
        )
        if change is not None:
            actions.append(SetEvictionRate(change.slow, change.message))
        for _, name, on_node in rationed:
            if name in admitted:
                actions.extend(
                    EvictPod(pod_ref(p), name, bool(p.deletion_requested_at)) for p in on_node
                )
    return actions


def _by_lease_alone(signals: NodeSignals | None, now: float, settings: NodeHealthSettings) -> bool:
    """Silent past its lease with its session stream open (no end seen) and a lease it
    earned (not the master's grant after a start or stall, whose nodes may have no stream)."""
    return (
        signals is not None
        and signals.session_ended_at is None
        and not signals.granted
        and signals.last_seen is not None
        and not heard_within_lease(signals, now, settings)
    )


def _pause_change(
    pause: bool, silent: int, total: int, settings: NodeHealthSettings
) -> SetEvictionsPaused:
    if pause:
        return SetEvictionsPaused(
            True,
            f"{silent} of {total} nodes went silent at once (more than "
            f"{settings.unhealthy_threshold:.0%}): the problem is more likely the master's "
            f"or the network's than the nodes'; no pods are replaced until fewer are silent",
        )
    return SetEvictionsPaused(
        False, f"{silent} of {total} nodes silent now: pods of lost nodes are replaced again"
    )


def stalled(last_pass: float, now: float, settings: NodeHealthSettings) -> bool:
    """Whether the master itself was away: its loop did not run for half a lease or more.

    Heartbeats could not be read meanwhile, so silence says nothing about the
    nodes; the caller gives every node a fresh lease before judging any.
    """
    return now - last_pass >= settings.lease_seconds / 2


def witness_members(nodes: Sequence[Node], has_pods: Callable[[str], bool]) -> list[Node]:
    """The nodes an agent's witness rule counts and asks (agent/fencing.py).

    A node NotReady with no pods left is dead (a machine that died, its pods replaced);
    counting it made a two-node cluster whose other node had died look like two, and the
    survivor fenced itself on a master stall ("1 of 2 nodes hear nothing"). A NotReady
    node that still holds pods (evictions paused, or waiting for them) still counts, and so
    does every Ready or Unknown node, and a node that just registered (NotReady only until
    the next pass, with no NotReady transition recorded).
    """
    return [
        n
        for n in nodes
        if n.status.ready
        or n.status.reason != NODE_NOT_READY
        or current_condition(n) != "NotReady"
        or has_pods(n.meta.name)
    ]
