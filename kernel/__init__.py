"""The small kernel master and agent share beside the wire contract (protos/).

Only what both sides must agree on and that needs no third-party package: the
injected clock, Kubernetes quantities, node names, the join-token form, the
anonymous bootstrap identity's public constants, and an atomic file write. It
imports nothing of pinnace's (the architecture test checks it), so either side
may use it without pulling in the other.
"""
