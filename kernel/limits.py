"""gRPC message size limits both ends of the node session agree on.

The master may send an agent at most MAX_MASTER_MESSAGE_BYTES in one message
(its whole assignment set, for instance); the agent accepts exactly that much,
so no legal message from the master is ever refused by the agent's default
4 MiB limit.
"""

from __future__ import annotations

MAX_MASTER_MESSAGE_BYTES = 64 * 1024 * 1024

# Options for an agent's channel to the master. No HTTP/2 BDP probes: with them the
# agent's gRPC core answers the master's messages (assignments, acks) with pings of its
# own, which the master's gRPC threads must read and acknowledge. A mutual-TLS server
# with 1,000 sessions exchanging a small message a second used 0.447 core with its own
# probes off and 0.400 with its clients' off too (tests/bench/ping_cost.py; 0.527 with
# both on); the master leaves its probes off as well (master/server.py server_options).
AGENT_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MASTER_MESSAGE_BYTES),
    ("grpc.http2.bdp_probe", 0),
)

# An agent that lists at least this many peers judges a master outage by its listed
# peers alone once the cluster is larger (agent/fencing.py); the master then need not
# resend the peer list when only the cluster's size changed (master/api/convert.py).
WITNESS_SAMPLE_MIN = 16
