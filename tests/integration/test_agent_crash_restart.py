"""A crashed container is run again from its die event alone, on the real engine.

The real agent process on the real Docker engine, driven by a fake master: a killed
container's first restart is decided from Docker's die event (agent/death_events.py: no
inspect before the start) and reported exactly as an inspected one was (restart count,
exit code, reason); a second crash within the back-off goes through the inspect and waits
in CrashLoopBackOff; an OOM kill is told from a kill by the oom event before its die.
The agents run without standby holders: a crash while its pod's standby was being made
goes to the standby (agent/runtime/sandbox.py STANDBY_WAIT), which test_standby_sandbox.py
covers; the OOM test failed so in one CI run.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from protos import node_pb2 as pb
from tests.integration.test_agent_docker import IMAGE, NO_STANDBY, Agents, agents, running
from tests.unit.test_agent_fake_master import FakeMaster, eventually, web_assignment

pytestmark = pytest.mark.integration
__all__ = ["agents"]  # the fixture, used by name

_TIMELINE = re.compile(r"restart-timeline pod=(\S+) .* death=(\w+) how=(.*)$", re.MULTILINE)


def _deaths(agents: Agents, node: str, pod: str) -> list[tuple[str, str]]:
    """How each restart of `pod` was decided (event or inspect) and how it ran again."""
    return [(d, how) for p, d, how in _TIMELINE.findall(agents.log(node)) if p == pod]


def _statuses(master: FakeMaster, node: str, pod: str) -> list[pb.ContainerStatusReport]:
    return [r.containers[0] for n, r in master.reports if n == node and r.pod_name == pod]


def _oom_pod(name: str) -> pb.PodAssignment:
    """A pod whose container runs a second, then asks for more memory than its limit."""
    pod = web_assignment(name, IMAGE)
    spec = pod.spec.containers[0]
    spec.command[:] = ["/bin/busybox", "sh", "-c"]
    spec.args[:] = ["sleep 1; exec dd if=/dev/zero of=/dev/null bs=64M count=1"]
    spec.limits.memory_bytes = 16 * 2**20
    return pod


def test_a_killed_container_is_restarted_from_its_die_event_and_reported_right(
    agents: Agents,
) -> None:
    async def scenario() -> None:
        master = FakeMaster(heartbeat=0.2, lease=10.0)
        address = await master.start()
        node = agents.node_name("crash")
        try:
            agents.start(address, node, *NO_STANDBY)  # the restart in place, not the standby's
            await eventually(lambda: master.connected(node), 20, "the agent's session")
            master.assign(node, web_assignment("web-c", IMAGE, epoch=3))
            await eventually(lambda: running(master, node, "web-c"), 30, "web-c Running")
            old = agents.containers(node)["web-c"]["Id"]

            agents.client.api.kill(old)
            first = await eventually(
                lambda: (
                    (s := running(master, node, "web-c"))
                    and s.containers[0].restart_count == 1
                    and s
                ),
                15,
                "web-c running again, restarted once",
            )

            assert first.containers[0].container_id == old  # started again in place
            # The worker logs a restart's timeline once the engine's start returned; a relist
            # may report the running container a moment before that line is written.
            deaths = await eventually(lambda: _deaths(agents, node, "web-c"), 10, "a timeline")
            assert deaths == [("event", "in place")]
            log = agents.log(node)
            assert "container exited (last exit code 137); restart #1" in log
            # What the master heard of the death, if anything, is what an inspect said.
            dead = [
                (c.reason, c.exit_code, c.restart_count)
                for c in _statuses(master, node, "web-c")
                if c.state == "terminated"
            ]
            assert set(dead) <= {("Error", 137, 1)}

            # Killed again within its back-off: inspected, CrashLoopBackOff, then run again.
            agents.client.api.kill(old)
            await eventually(
                lambda: (
                    (s := running(master, node, "web-c")) and s.containers[0].restart_count == 2
                ),
                20,
                "web-c running again, restarted twice",
            )
            waiting = [
                c for c in _statuses(master, node, "web-c") if c.reason == "CrashLoopBackOff"
            ]
            assert waiting and all(c.restart_count == 1 for c in waiting)
            assert "last exit code 137" in waiting[0].message
            deaths = await eventually(
                lambda: (d := _deaths(agents, node, "web-c")) and len(d) >= 2 and d,
                10,
                "the second restart's timeline",
            )
            assert [d for d, _ in deaths] == ["event", "inspect"]
        finally:
            await master.stop()
        assert "Traceback" not in agents.log(node)

    asyncio.run(scenario())


def test_an_oom_kill_is_told_from_its_events(agents: Agents) -> None:
    async def scenario() -> None:
        master = FakeMaster(heartbeat=0.2, lease=10.0)
        address = await master.start()
        node = agents.node_name("oom")
        try:
            agents.start(address, node, *NO_STANDBY)  # the restart in place, not the standby's
            await eventually(lambda: master.connected(node), 20, "the agent's session")
            master.assign(node, _oom_pod("hog"))

            # The first OOM kill restarts at once from the events; the second backs off.
            await eventually(
                lambda: any(c.reason == "CrashLoopBackOff" for c in _statuses(master, node, "hog")),
                40,
                "hog in CrashLoopBackOff after its second OOM kill",
            )

            log = agents.log(node)
            assert "container exited (last exit code 137 (OOMKilled)); restart #1" in log
            assert _deaths(agents, node, "hog")[0] == ("event", "in place")
            waiting = [c for c in _statuses(master, node, "hog") if c.reason == "CrashLoopBackOff"]
            assert "last exit code 137 (OOMKilled)" in waiting[0].message
            dead = {c.reason for c in _statuses(master, node, "hog") if c.state == "terminated"}
            assert dead <= {"OOMKilled"}
        finally:
            await master.stop()
        assert "Traceback" not in agents.log(node)

    asyncio.run(scenario())
