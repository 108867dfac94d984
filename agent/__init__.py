"""pinnace's node agent: runs the pods the master assigns to this machine.

`python -m agent` (what `pinnace agent` execs) registers the node, holds one gRPC
session with the master (agent/session.py) and reconciles the assigned pods against
the containers of this node (agent/worker.py, deciding in the pure agent/sync.py)
through a Runtime port (agent/runtime/). It shares nothing with the master but the
wire contract in protos/node.proto.
"""
