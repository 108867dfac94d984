"""A real agent with --standby-sandbox on the real engine, driven by a fake master: a
one-container pod's standby holder is made once it runs; a killed container comes back
joined to it (a new container, restart count 1, as before); a second crash within the
back-off still waits in CrashLoopBackOff; the pod's removal leaves nothing on the node.
Fails on the code before standbys (no such flag: the agent does not start).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.integration.test_agent_docker import IMAGE, Agents, agents, running
from tests.unit.test_agent_fake_master import FakeMaster, eventually, web_assignment

pytestmark = pytest.mark.integration
__all__ = ["agents"]  # the fixture, used by name

_TIMELINE = re.compile(r"restart-timeline pod=(\S+) .* death=(\w+) how=(.*)$", re.MULTILINE)


def _standbys(agents: Agents, node: str) -> list[dict[str, Any]]:
    return list(
        agents.client.api.containers(
            filters={"label": [f"pinnace.node={node}", "pinnace.sandbox-standby"]}
        )
    )


def test_a_killed_container_comes_back_joined_to_its_standby_and_the_pods_removal_takes_it(
    agents: Agents,
) -> None:
    async def scenario() -> None:
        master = FakeMaster(heartbeat=0.2, lease=10.0)
        address = await master.start()
        node = agents.node_name("standby")
        try:
            agents.start(address, node, "--standby-sandbox")
            await eventually(lambda: master.connected(node), 20, "the agent's session")
            master.assign(node, web_assignment("web-s", IMAGE, epoch=3))
            await eventually(lambda: running(master, node, "web-s"), 30, "web-s Running")
            old = agents.containers(node)["web-s"]["Id"]
            (standby,) = await eventually(lambda: _standbys(agents, node), 30, "its standby")
            # The agent's listing gives the container its standby (said once in its log).
            await eventually(
                lambda: f"container {old[:12]} listed with its standby" in agents.log(node),
                10,
                "the standby listed",
            )
            # The standby is not the pod's container in what the master hears.
            status = running(master, node, "web-s")
            assert status is not None
            assert [c.container_id for c in status.containers] == [old]

            agents.client.api.kill(old)
            first = await eventually(
                lambda: (
                    (s := running(master, node, "web-s"))
                    and s.containers[0].restart_count == 1
                    and s
                ),
                15,
                "web-s running again, restarted once",
            )
            again = first.containers[0].container_id
            assert again != old
            mode = agents.client.api.inspect_container(again)["HostConfig"]["NetworkMode"]
            assert mode == f"container:{standby['Id']}"
            timeline = await eventually(
                lambda: [h for p, _, h in _TIMELINE.findall(agents.log(node)) if p == "web-s"],
                10,
                "a timeline",
            )
            assert timeline == ["replaced (its pod's standby sandbox runs)"]
            await eventually(
                lambda: (
                    list(agents.containers(node)) == ["web-s"]
                    and agents.containers(node)["web-s"]["Id"] == again
                ),
                15,
                "the crashed container removed",
            )

            # Killed again within its back-off: CrashLoopBackOff as before, then running.
            agents.client.api.kill(again)
            await eventually(
                lambda: (
                    (s := running(master, node, "web-s")) and s.containers[0].restart_count == 2
                ),
                20,
                "web-s running again, restarted twice",
            )
            statuses = [
                r.containers[0] for n, r in master.reports if n == node and r.pod_name == "web-s"
            ]
            assert any(c.reason == "CrashLoopBackOff" for c in statuses)

            master.assign(node)
            await eventually(
                lambda: (
                    not agents.client.api.containers(
                        all=True, filters={"label": f"pinnace.node={node}"}
                    )
                ),
                30,
                "nothing of the pod left on the node, its standby included",
            )
        finally:
            await master.stop()
        assert "Traceback" not in agents.log(node)

    asyncio.run(scenario())
