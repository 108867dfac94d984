"""A restarted agent counts the master's silence from when it started, not from boot.

With --fence-after set (the compose demo's agents), the rule applies before the first
registration; the silence must start at the agent's first look, else an agent
restarted on a machine up for an hour fences its adopted pods at once ("no
heartbeat ack from the master for 5618.5s").
"""

from __future__ import annotations

from agent.fencing import FencePolicy
from agent.state.events import Tick
from agent.state.machine import AgentState

UPTIME = 5618.5  # monotonic seconds since the machine booted


def test_silence_is_counted_from_the_agent_start_not_from_boot() -> None:
    state = AgentState("127.0.0.1", FencePolicy(fence_after=10.0), validate=True)

    state.handle(Tick(UPTIME))
    state.handle(Tick(UPTIME + 5.0))

    assert not state.fenced


def test_a_restarted_agent_still_fences_when_the_master_stays_silent_past_the_limit() -> None:
    state = AgentState("127.0.0.1", FencePolicy(fence_after=10.0), validate=True)

    state.handle(Tick(UPTIME))
    for t in range(1, 12):
        state.handle(Tick(UPTIME + t))

    assert state.fenced
    assert "for 11.0s" in state.pods.fence_reason
