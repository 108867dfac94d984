"""When a controller pass lets the master's loop run other work (pure).

The master has one event loop for heartbeats, API calls and the controllers. A pass
that placed 2,000 pods at 1,000 nodes ran for 350 ms and more in one piece (the
scheduler, then the deployment controller's pod creations): every heartbeat ack and
API answer waited behind it. So the pass runs in steps (master/controllers/manager.py):
between controllers, and within the two that can be long, the scheduler's placements
(master/scheduler/framework.py's `schedule_each` keeps its columns across a yield,
so a step costs no extra work) and the deployments' pod creations, as soon as the step
has used `STEP_SECONDS` of the loop thread's CPU.
"""

from __future__ import annotations

# The CPU a step may take before the loop gets a turn (the loop-lag goal: p99 <= 50 ms).
STEP_SECONDS = 0.02


def step_over(started: float, now: float, budget: float = STEP_SECONDS) -> bool:
    """Whether a step that started at `started` (thread CPU seconds) has had its turn."""
    return now - started >= budget
