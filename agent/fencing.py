"""When the agent must stop its own pods because it may have lost its lease (pure).

The master makes a node NotReady after `lease_seconds` of silence and then
replaces its pods elsewhere; a partitioned agent that kept running them would
double them (two writers, two leaders...). So the agent fences itself first:
- no heartbeat ack for `fence_after` seconds (default 0.8 x lease, so it stops
  before the master gives up on it) -> fence; except when the last connection
  error was "connection refused": then the master process is down, nothing can
  be replacing our pods, and a restarted master grants a fresh lease;
- the process was frozen (SIGSTOP, a VM pause): its monotonic clock jumped by
  more than the lease between two ticks -> fence at once, before reconnecting.
After fencing, the session starts afresh; the new session's assignment set lifts
the fence (agent/worker.py), once the teardown is under way.
"""

from __future__ import annotations

from dataclasses import dataclass

FENCE_FRACTION_OF_LEASE = 0.8


@dataclass(frozen=True, slots=True)
class FencePolicy:
    enabled: bool = True
    # Explicit --fence-after; None: FENCE_FRACTION_OF_LEASE x the lease the master gave.
    fence_after: float | None = None


@dataclass(frozen=True, slots=True)
class FenceVerdict:
    reason: str
    # Fenced because the process was frozen (rather than for missing acks).
    frozen: bool = False


def fence_decision(
    policy: FencePolicy,
    lease_seconds: float | None,
    since_ack: float,
    last_error_refused: bool,
    tick_gap: float,
) -> FenceVerdict | None:
    """Whether to fence now. `lease_seconds` is None until the first registration."""
    if not policy.enabled:
        return None
    if lease_seconds and tick_gap > lease_seconds:
        return FenceVerdict(
            f"the agent was frozen for {tick_gap:.1f}s, longer than its {lease_seconds:g}s lease",
            frozen=True,
        )
    limit = policy.fence_after
    if limit is None and lease_seconds:
        limit = FENCE_FRACTION_OF_LEASE * lease_seconds
    if limit is None or since_ack <= limit or last_error_refused:
        return None
    return FenceVerdict(f"no heartbeat ack from the master for {since_ack:.1f}s")
