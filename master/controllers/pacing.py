"""How long the controller loop rests after a pass (pure).

Every pod status an agent reports wakes the controllers, and a pass over a
large cluster (10,000 pods, 1,000 nodes) takes tens of milliseconds or more. Run
back to back, passes held the master's one event loop most of the time:
heartbeats were read late, nodes went NotReady while healthy, their pods were
replaced, and 1,000 nodes / 10,000 pods sometimes never converged. So after a
pass the loop rests in proportion to what the pass cost: the controllers take
at most `share` of the loop, the rest is left to heartbeats and the APIs. Wake-ups
that arrive meanwhile are coalesced into the next pass. Cheap passes (a small
cluster) do not rest at all, so nothing changes there.
"""

from __future__ import annotations

# Passes cheaper than this never rest: small clusters react at once.
CHEAP_PASS_SECONDS = 0.01
# The controllers' largest share of the master's loop under a stream of wake-ups.
CONTROLLER_SHARE = 0.5
# A rest never exceeds this, so a very slow pass does not delay the next one by as much.
MAX_REST_SECONDS = 1.0


def rest_after_pass(
    pass_seconds: float, share: float = CONTROLLER_SHARE, cap: float = MAX_REST_SECONDS
) -> float:
    """Seconds to rest after a pass that took `pass_seconds`."""
    if pass_seconds < CHEAP_PASS_SECONDS:
        return 0.0
    return min(cap, pass_seconds * (1.0 - share) / share)
