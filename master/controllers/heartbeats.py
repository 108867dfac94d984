"""How often nodes heartbeat and how long their leases last, as the cluster grows (pure).

Every heartbeat costs the master a read, a lease renewal and an ack; at 1 s each,
5,000 nodes would be 5,000 a second, more than one Python master should spend
its time on. Nomad caps the heartbeats a server takes in total and stretches each
node's TTL to fit; Kubernetes' node leases do the same at a fixed 40 s. pinnace
keeps its fast detection: the interval is the configured one until the cluster
would send more than `max_rate` heartbeats a second, then grows to keep the total
at `max_rate`; the lease grows by the same amount, so it keeps the configured
slack over the interval (2 s by default: one late beat and then some) and a dead
node is still detected within lease + one controller pass.

  nodes    interval  lease   (defaults: 1 s, 3 s, at most 2,500 beats/s)
  1..2500  1 s       3 s
  5000     2 s       4 s
  10000    4 s       6 s

A node keeps the plan it was given when it registered (the master judges it by
that lease), so a cluster that shrinks never judges an old node by a lease
shorter than its interval; it gets the new plan when it registers again.
"""

from __future__ import annotations

from dataclasses import dataclass

# Total heartbeats per second the master plans for; 0 turns stretching off.
DEFAULT_MAX_HEARTBEATS_PER_SECOND = 2500.0


@dataclass(frozen=True, slots=True)
class HeartbeatPlan:
    interval: float
    lease: float


def heartbeat_plan(
    node_count: int,
    base_interval: float,
    base_lease: float,
    max_rate: float = DEFAULT_MAX_HEARTBEATS_PER_SECOND,
) -> HeartbeatPlan:
    """The interval and lease for a node registering into a cluster of `node_count`."""
    if max_rate <= 0 or node_count <= 0:
        return HeartbeatPlan(base_interval, base_lease)
    interval = max(base_interval, node_count / max_rate)
    stretch = interval - base_interval
    return HeartbeatPlan(interval, base_lease + stretch)
