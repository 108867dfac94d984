"""How often nodes heartbeat and how long their leases last, as the cluster grows (pure).

Every heartbeat costs the master a read, a lease renewal and an ack (about 0.3 ms
of its CPU); at 1 s each, 5,000 nodes would be 5,000 a second, more than one
Python master should spend its time on. Nomad caps the heartbeats a server takes
in total and stretches each node's TTL to fit; Kubernetes' node leases do the
same at a fixed 40 s. A dead node is not found by its heartbeats any more: its
session stream ends (keepalive pings in gRPC's core, master/server.py) and it is
NotReady within seconds at any size (master/controllers/lifecycle.py). The
heartbeat still catches an agent that hangs with its connection open, within its
lease. The interval is the configured one until the cluster would send more than
`max_rate` heartbeats a second, then grows to keep the total at `max_rate`; the
lease grows by the same amount, so it keeps the configured slack over the
interval (2 s by default: one late beat and then some).

  nodes    interval  lease   (defaults: 1 s, 3 s, at most 250 beats/s)
  1..250   1 s       3 s
  1000     4 s       6 s
  5000     20 s      22 s

The cap was 500 a second; with TLS a heartbeat and its ack cost the master about
0.6 ms of CPU (most of it in gRPC's own Python layer), so 500 a second were 0.3
core, most of the 0.5-core budget, before the keepalive pings of 5,000
connections. At 250 the heartbeats of a hung agent (the only death they alone
catch) are found within 22 s at 5,000 nodes; Kubernetes' node lease is 40 s.

As the cluster grows, a node's plan grows with it: the ack of its next heartbeat
carries the longer interval and lease (the master judges it by the longer lease
from then on; the agent fences by it once it has read it). Without that, the
nodes that joined early kept beating every second and the total was 500 x
(1 + ln(N / 500)) a second at a cap of 500: 1,650 at 5,000 nodes, three times it. A plan
shrinks within a session only by a handshake (master/controllers/session_plan.py):
when the cluster shrank or the master's heartbeat budget grew back, the ack offers
the shorter plan, numbered, and the master judges the node by its old, longer lease
until the agent's next heartbeat says it runs the new one, so it never judges a node
by a lease shorter than the interval the agent beats by. An agent that does not say
its plan (older) keeps the longer one until it registers again.
"""

from __future__ import annotations

from dataclasses import dataclass

# Total heartbeats per second the master plans for; 0 turns stretching off.
DEFAULT_MAX_HEARTBEATS_PER_SECOND = 250.0


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
