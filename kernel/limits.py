"""gRPC message size limits both ends of the node session agree on.

The master may send an agent at most MAX_MASTER_MESSAGE_BYTES in one message
(its whole assignment set, for instance); the agent accepts exactly that much,
so no legal message from the master is ever refused by the agent's default
4 MiB limit.
"""

from __future__ import annotations

MAX_MASTER_MESSAGE_BYTES = 64 * 1024 * 1024

# Options for an agent's channel to the master.
AGENT_CHANNEL_OPTIONS = (("grpc.max_receive_message_length", MAX_MASTER_MESSAGE_BYTES),)

# An agent that lists at least this many peers judges a master outage by its listed
# peers alone once the cluster is larger (agent/fencing.py); the master then need not
# resend the peer list when only the cluster's size changed (master/api/convert.py).
WITNESS_SAMPLE_MIN = 16
