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
- a failed connection is retried after 0.2 s doubling to 5 s (1 s while the
  master refuses connections: it is restarting, and gives its nodes one lease
  to come back), with jitter; one log line per series of failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.fencing import FencePolicy, FenceVerdict, fence_decision
from agent.state.events import (
    HeartbeatDue,
    Instruction,
    Log,
    MasterHeard,
    Reconnect,
    Registered,
    RestartSession,
    SendHeartbeat,
    SessionEnded,
    Tick,
)

RECONNECT_INITIAL = 0.2
RECONNECT_CAP = 5.0
# While the master refuses connections (its process is down: restarting, most likely),
# retry at least every second: a refusal costs nothing, and a restarted master grants
# its nodes only one lease to come back before it replaces their pods.
REFUSED_CAP = 1.0


@dataclass(slots=True)
class LeaseState:
    policy: FencePolicy = field(default_factory=lambda: FencePolicy(enabled=False))
    lease_seconds: float | None = None
    heartbeat_seconds: float = 1.0
    registered: bool = False
    # Monotonic time the master was last heard from (or the fence last restarted it).
    last_heard: float = 0.0
    last_error_refused: bool = False
    last_tick: float | None = None
    sequence: int = 0
    # A fence asked for a fresh session; nothing more is taken from this one.
    restarting: bool = False
    reconnect_delay: float = RECONNECT_INITIAL
    failures: int = 0
    latest: float = 0.0

    def _verdict(self, mono: float, gap: float) -> FenceVerdict | None:
        return fence_decision(
            self.policy, self.lease_seconds, mono - self.last_heard, self.last_error_refused, gap
        )

    def _see(self, mono: float) -> None:
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
        return []

    def check(self, mono: float, gap: float, fenced: bool) -> tuple[str, list[Instruction]]:
        """Applies the fence rules now: (the fence reason or "", instructions)."""
        self._see(mono)
        if self.restarting:
            return "", [RestartSession("restarting the session after fencing")]
        verdict = self._verdict(mono, gap)
        if verdict is None or (fenced and not verdict.frozen):
            return "", []
        # The master has most likely given our session up: start a fresh one, whose
        # assignments lift the fence (once the teardown is under way).
        self.last_heard = mono
        self.restarting = True
        return verdict.reason, [RestartSession("restarting the session after fencing")]

    def heard(self, event: MasterHeard, fenced: bool) -> tuple[str, list[Instruction]]:
        reason, out = self.check(event.mono, 0.0, fenced)
        if not out:
            self.last_heard = event.mono
        return reason, out

    def heartbeat(self, event: HeartbeatDue, fenced: bool) -> tuple[str, list[Instruction]]:
        # No heartbeat (which would renew the lease) from a session that must fence.
        reason, out = self.check(event.mono, 0.0, fenced)
        if out:
            return reason, out
        self.sequence += 1
        return "", [SendHeartbeat(self.sequence)]

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
        return self.check(event.mono, gap, fenced)

    def ended(self, event: SessionEnded) -> list[Instruction]:
        target = event.master
        self.last_error_refused = event.refused
        out: list[Instruction] = []
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
        return found
