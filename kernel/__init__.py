"""The small kernel master and agent share beside the wire contract (protos/).

Only what both sides must agree on and that needs no third-party package: the
injected clock, Kubernetes quantities, node names, the join-token form, the
anonymous bootstrap identity's public constants, an atomic file write, and
typing.NamedTuple's class syntax without typing's import (records.py: the CLI's
start-up). It imports nothing of pinnace's (the architecture test checks it), so
either side may use it without pulling in the other.
"""
