"""The session half of the agent's state machine: lease, heartbeats, fencing, reconnects.

State: the lease the master granted at registration, when the master was last
heard (monotonic), whether the last connection error was "connection refused",
the last fence-watcher tick, the heartbeat sequence, the reconnect backoff.

Rules (agent/fencing.py holds the pure fence decision):
- every message from the master (`MasterHeard`) is checked first: one that
  waited out a freeze or a partition in a socket buffer fences (and is dropped
  with the session) instead of renewing the lease;
- a heartbeat goes out only from a session that need not fence;
- a fence restarts the session: the master has most likely given it up, and
  the new session's assignment set lifts the fence (agent/state/pods.py);
- before fencing for silence, the peers are asked whether they hear the master
  (the rule and its table: agent/fencing.py, "witnesses"): when most of the
  cluster hears nothing either, the master stalled, and the pods are held
  (kept running); the agent says so once the master is back (a NodeNotice,
  which the master records as an event). While holding, a majority that hears
  the master again without this node, in two rounds of answers running, fences
  it; a message from the master itself ends the hold;
- a failed connection is retried after 0.2 s doubling to 5 s (1 s while the
  master refuses connections: it is restarting, and gives its nodes one lease
  to come back), with jitter; one log line per series of failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.fencing import (
    ASK_MARGIN,
    FencePolicy,
    FenceVerdict,
    PeerView,
    fence_after,
    fence_decision,
    wait_deadline,
    witness_times,
    witness_verdict,
)
from agent.join_retry import join_wait
from agent.model import PeerAddress
from agent.state.events import (
    AskPeers,
    HeartbeatDue,
    Instruction,
    Log,
    MasterHeard,
    PeersAnswered,
    PeersUpdated,
    PlanChanged,
    PlanGiven,
    Reconnect,
    Registered,
    RestartSession,
    SendHeartbeat,
    SendNotice,
    SessionEnded,
    Tick,
)
from agent.state.plan import RunningPlan, confirms_at_once, follow, registered_plan

RECONNECT_INITIAL = 0.2
RECONNECT_CAP = 5.0
# While the master refuses connections (its process is down: restarting, most likely),
# retry at least every second: a refusal costs nothing, and a restarted master grants
# its nodes only one lease to come back before it replaces their pods.
REFUSED_CAP = 1.0
# Rounds of answers running in which most of the cluster hears the master without this
# node, before a holding node fences (one round may straddle the master's return).
FLIP_ROUNDS = 2
_RESTART = RestartSession("restarting the session after fencing")


@dataclass(slots=True)
class LeaseState:
    policy: FencePolicy = field(default_factory=lambda: FencePolicy(enabled=False))
    lease_seconds: float | None = None
    heartbeat_seconds: float = 1.0
    registered: bool = False
    # Monotonic time the master was last heard from (or the fence last restarted it, or
    # the agent first looked).
    last_heard: float = 0.0
    seen_any: bool = False
    last_error_refused: bool = False
    last_tick: float | None = None
    sequence: int = 0
    # The number of the heartbeat plan run (agent/state/plan.py), said in every heartbeat.
    plan: int = 0
    # A fence asked for a fresh session; nothing more is taken from this one.
    restarting: bool = False
    reconnect_delay: float = RECONNECT_INITIAL
    failures: int = 0
    latest: float = 0.0
    # Witnesses: the master's peer list, the answers (name -> (asked at, view)): each
    # peer's latest, and its latest that came back in time (reachable).
    peers: tuple[PeerAddress, ...] = ()
    cluster_size: int = 0
    views: dict[str, tuple[float, PeerView]] = field(default_factory=dict)
    answers: dict[str, tuple[float, PeerView]] = field(default_factory=dict)
    asking: bool = False
    last_ask: float = float("-inf")
    # The last round left listed peers unanswered: ask again without waiting ASK_EVERY.
    unanswered: bool = False
    # Holding the pods through a silence of the master (since when, and why).
    holding: bool = False
    hold_since: float = 0.0
    hold_why: str = ""
    flip_rounds: int = 0

    def _verdict(self, mono: float, gap: float) -> FenceVerdict | None:
        return fence_decision(
            self.policy, self.lease_seconds, mono - self.last_heard, self.last_error_refused, gap
        )

    def _see(self, mono: float) -> None:
        if not self.seen_any:
            # Silence is counted from when the agent started looking, not from the
            # machine's boot: a restarted agent (--fence-after set, no lease yet) must
            # not find itself silent for the machine's whole uptime.
            self.seen_any = True
            self.last_heard = mono
        self.latest = max(self.latest, mono)

    def registered_event(self, event: Registered) -> list[Instruction]:
        self._see(event.mono)
        self.registered = True
        self.restarting = False
        self.last_heard = event.mono
        self.last_error_refused = False
        self.lease_seconds = event.lease_seconds
        self.heartbeat_seconds = event.heartbeat_seconds
        self.sequence = 0
        self.plan = registered_plan(event.heartbeat_seconds, event.lease_seconds).number
        return self._end_hold(event.mono)

    def plan_given(self, event: PlanGiven) -> list[Instruction]:
        """A new heartbeat plan from the master (agent/state/plan.py): a longer one (the
        cluster grew, the master's budget was cut) or, numbered, a shorter one (the budget
        grew back). The master judges by the longer of the old and new leases until a
        heartbeat says this plan's number, so fencing by the new one from now is early,
        never late. A shorter plan is confirmed with a heartbeat at once (confirms_at_once):
        the master judges by it one round trip later, not one new interval later (a node
        that stalled in between was judged by the old 40 s lease), and the next beat is due
        one new interval after this one (PlanChanged.sooner)."""
        now = RunningPlan(self.plan, self.heartbeat_seconds, self.lease_seconds)
        new = follow(now, event.number, event.heartbeat_seconds, event.lease_seconds)
        if new == now:
            return []
        self.plan, self.heartbeat_seconds, self.lease_seconds = new.number, new.interval, new.lease
        sooner = new.interval < now.interval
        out: list[Instruction] = [PlanChanged(new.number, new.interval, new.lease or 0.0, sooner)]
        if confirms_at_once(now, new) and not self.restarting:
            self.sequence += 1
            out.append(SendHeartbeat(self.sequence, self.plan))
        return out

    def check(self, mono: float, gap: float, fenced: bool) -> tuple[str, list[Instruction]]:
        """Applies the fence rules now: (the fence reason or "", instructions)."""
        self._see(mono)
        if self.restarting:
            return "", [_RESTART]
        verdict = self._verdict(mono, gap)
        if verdict is None or (fenced and not verdict.frozen):
            return "", []
        reason = verdict.reason
        if not verdict.frozen and self.cluster_size > 0 and self.holding:
            # Answers keep coming: `answered` decides. None for a while: no telling any
            # more whether this node is the one cut off; fence.
            if self._fresh(mono) or not self.peers:
                return "", []
            age = witness_times(self.lease_seconds).view_max_age
            return self._fence(mono, f"{reason}, and no peer answered for {age:g}s", [])
        if not verdict.frozen and self.cluster_size > 0:
            decision, why = witness_verdict(self.cluster_size, len(self.peers), self._fresh(mono))
            if decision == "hold":
                return "", self._hold(mono, why)
            deadline = wait_deadline(self.policy, self.lease_seconds) or 0.0
            if decision == "wait" and mono - self.last_heard <= deadline:
                return "", []  # too few answers to tell: ask again until the deadline
            reason = f"{reason}, and {why}"
        return self._fence(mono, reason, [])

    def _fence(
        self, mono: float, reason: str, out: list[Instruction]
    ) -> tuple[str, list[Instruction]]:
        # The master has most likely given our session up: start a fresh one, whose
        # assignments lift the fence (once the teardown is under way).
        self.holding, self.flip_rounds = False, 0
        self.last_heard = mono
        self.restarting = True
        return reason, [*out, _RESTART]

    def _hold(self, mono: float, why: str) -> list[Instruction]:
        if self.holding:
            return []
        self.holding, self.hold_since, self.hold_why = True, self.last_heard, why
        silence = mono - self.last_heard
        return [
            Log(
                "warning",
                f"no word from the master for {silence:.1f}s, but {why}: the master is the "
                "problem, not this node; keeping its pods running",
            )
        ]

    def _end_hold(self, mono: float) -> list[Instruction]:
        if not self.holding:
            return []
        self.holding, self.flip_rounds = False, 0
        away = mono - self.hold_since
        message = (
            f"the master was silent for {away:.1f}s ({self.hold_why}); "
            "this node kept its pods running"
        )
        return [
            Log("info", f"the master is back: {message}"),
            SendNotice("MasterUnreachable", message),
        ]

    def _fresh(self, mono: float) -> list[PeerView]:
        """The answers that speak of this silence: asked once it neared fence_after, and
        recently. A peer whose latest answer did not come back in time is judged by its
        last one that did, while that one is fresh: on a busy machine one answer in a few
        misses the ask timeout (0.3 s of the 0.45 are the peer's own probe of the
        master), and a holding node fenced for two misses running though its peer had
        answered "silent too" a second before (test_master_stall at load 17)."""
        limit = fence_after(self.policy, self.lease_seconds) or 0.0
        times = witness_times(self.lease_seconds)
        oldest = max(self.last_heard + limit - times.ask_lead, mono - times.view_max_age) - 1e-9
        fresh: list[PeerView] = []
        for name, (asked, view) in self.views.items():
            answer = self.answers.get(name)
            if not view.reachable and answer is not None and answer[0] >= oldest:
                fresh.append(answer[1])
            elif asked >= oldest:
                fresh.append(view)
        return fresh

    def _maybe_ask(self, mono: float) -> list[Instruction]:
        limit = fence_after(self.policy, self.lease_seconds)
        times = witness_times(self.lease_seconds)
        if (
            limit is None
            or not self.peers
            or self.asking
            or self.last_error_refused
            or self.restarting
            or mono - self.last_heard <= limit - times.ask_lead
            # Again at once when the last round left peers unanswered (a cold connection
            # timed out): waiting ask_every would leave no time to ask before the deadline.
            or (mono - self.last_ask < times.ask_every and not self.unanswered)
        ):
            return []
        self.asking, self.last_ask, self.unanswered = True, mono, False
        return [AskPeers(mono, self.peers, self._ask_timeout(mono), times.hears_within)]

    def _ask_timeout(self, mono: float) -> float:
        """How long this round's answers may take. Before holding, as long as still leaves
        time to decide before the wait deadline (ASK_MARGIN): on a busy machine an answer
        came back 0.5 s after a 0.45 s timeout had thrown it away, the question asked again
        met the same fate, and the node fenced through a master stall. Holding, the
        lease's ask timeout: rounds keep coming while answers stay fresh."""
        times = witness_times(self.lease_seconds)
        deadline = wait_deadline(self.policy, self.lease_seconds)
        if self.holding or deadline is None:
            return times.ask_timeout
        return max(times.ask_timeout, deadline - (mono - self.last_heard) - ASK_MARGIN)

    def heard(self, event: MasterHeard, fenced: bool) -> tuple[str, list[Instruction]]:
        if self.holding and not self.restarting:
            # The master itself answers: whatever the peers said, it is back for us too.
            self._see(event.mono)
            self.last_heard = event.mono
            return "", self._end_hold(event.mono)
        reason, out = self.check(event.mono, 0.0, fenced)
        if _RESTART not in out:
            self.last_heard = event.mono
            out += self._end_hold(event.mono)
        return reason, out

    def heartbeat(self, event: HeartbeatDue, fenced: bool) -> tuple[str, list[Instruction]]:
        # No heartbeat (which would renew the lease) from a session that must fence.
        reason, out = self.check(event.mono, 0.0, fenced)
        if _RESTART in out:
            return reason, out
        self.sequence += 1
        return reason, [*out, SendHeartbeat(self.sequence, self.plan)]

    def peers_updated(self, event: PeersUpdated) -> list[Instruction]:
        self.peers, self.cluster_size = event.peers, event.cluster_size
        names = {p.name for p in event.peers}
        self.views = {n: v for n, v in self.views.items() if n in names}
        self.answers = {n: v for n, v in self.answers.items() if n in names}
        self.asking = self.asking and bool(self.peers)
        return []

    def answered(self, event: PeersAnswered, fenced: bool) -> tuple[str, list[Instruction]]:
        self.asking = False
        listed = {p.name for p in self.peers}
        reached = {v.name for v in event.views if v.reachable}
        self.unanswered = bool(listed - reached)
        for view in event.views:
            if view.name in listed:
                self.views[view.name] = (event.asked_at, view)
                if view.reachable:
                    self.answers[view.name] = (event.asked_at, view)
        if not self.holding or self.restarting:
            return "", []
        decision, why = witness_verdict(
            self.cluster_size, len(self.peers), self._fresh(self.latest)
        )
        # While holding, answers that cannot tell count against holding like a fence verdict:
        # a node that can no longer reach its peers must not hold on for ever.
        self.flip_rounds = 0 if decision == "hold" else self.flip_rounds + 1
        if self.flip_rounds < FLIP_ROUNDS and not fenced and self.flip_rounds:
            # The peers hear the master again and this node not yet: ask the master itself
            # now (a heartbeat; its ack ends the hold) instead of waiting for the next one
            # due, up to a heartbeat interval later. After a stall the master answers the
            # nodes one by one, and a node whose next beat was not due within the flip
            # rounds fenced though the master was back for it too (test_agent_witness at
            # load). A node really cut off gets no answer and fences as before.
            self.sequence += 1
            return "", [SendHeartbeat(self.sequence, self.plan)]
        if self.flip_rounds < FLIP_ROUNDS or fenced:
            return "", []
        silence = self.latest - self.last_heard
        reason = f"no heartbeat ack from the master for {silence:.1f}s, and {why}"
        return self._fence(self.latest, reason, [])

    def tick(self, event: Tick, fenced: bool) -> tuple[str, list[Instruction]]:
        gap = 0.0 if self.last_tick is None else event.mono - self.last_tick
        self.last_tick = event.mono
        if self.restarting:
            # The session is being replaced already; only a freeze still fences (again).
            verdict = self._verdict(event.mono, gap)
            if verdict is None or not verdict.frozen:
                return "", []
            self.last_heard = event.mono
            return verdict.reason, []
        reason, out = self.check(event.mono, gap, fenced)
        return reason, out + ([] if reason else self._maybe_ask(event.mono))

    def ended(self, event: SessionEnded) -> list[Instruction]:
        target = event.master
        self.last_error_refused = event.refused
        out: list[Instruction] = []
        if event.retry_after > 0 and not event.registered:
            # The master is up and admitting as many registrations as it takes at once: no
            # failure (the backoff does not grow), and come back when it said, jittered so
            # that thousands refused in the same second do not return in the same second
            # (agent/join_retry.py: half to one and a half times the hint).
            self.registered = False
            wait = join_wait(True, event.retry_after, self.reconnect_delay, event.jitter)
            out.append(
                Log(
                    "info",
                    f"master {target} is busy admitting other registrations: "
                    f"coming back in {wait.seconds:.1f}s",
                )
            )
            out.append(Reconnect(wait.seconds))
            return out
        if event.registered:
            self.reconnect_delay, self.failures = RECONNECT_INITIAL, 0
            out.append(
                Log("warning", f"session with master {target} lost: {event.error}; reconnecting")
            )
        else:
            self.failures += 1
            if self.failures == 1:
                out.append(
                    Log(
                        "warning",
                        f"cannot register with master {target}: {event.error}; retrying "
                        f"(every {RECONNECT_CAP:g}s at most)",
                    )
                )
            else:
                out.append(
                    Log("debug", f"attempt {self.failures} to reach {target}: {event.error}")
                )
        self.registered = False
        if event.redirected:
            # One of several masters answered (a follower): a failover is under way or
            # over. Come back at once to the leader it named, and start backing off afresh
            # (a dead old leader's "connection refused" must not pile up delays).
            self.reconnect_delay = RECONNECT_INITIAL
            out.append(Reconnect(RECONNECT_INITIAL * (0.5 + event.jitter)))
            return out
        cap = REFUSED_CAP if event.refused else RECONNECT_CAP
        self.reconnect_delay = min(cap, self.reconnect_delay)
        out.append(Reconnect(self.reconnect_delay * (0.5 + event.jitter)))
        self.reconnect_delay = min(cap, self.reconnect_delay * 2)
        return out

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.last_heard > self.latest + 1e-9:
            found.append("the master heard in the future")
        if self.sequence < 0:
            found.append("a negative heartbeat sequence")
        if not RECONNECT_INITIAL <= self.reconnect_delay <= RECONNECT_CAP:
            found.append(f"reconnect delay {self.reconnect_delay} out of range")
        if self.lease_seconds is not None and self.lease_seconds <= 0:
            found.append("a lease of no length")
        if self.holding and (self.restarting or self.cluster_size <= 0):
            found.append("holding the pods while restarting, or without a known cluster")
        if (set(self.views) | set(self.answers)) - {p.name for p in self.peers}:
            found.append("answers kept from peers no longer listed")
        if self.asking and not self.peers:
            found.append("asking no peers")
        return found
