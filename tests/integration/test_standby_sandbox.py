"""Standby sandboxes on a real engine (DockerRuntime with standby=True, the agent's
--standby-sandbox): a one-container pod runs with a network of its own; once it runs and
the engine is quiet, a holder is made for it (never listed as the pod's container); its
crashed container is replaced by one joined to that holder; deleting the pod leaves nothing;
an agent started again adopts the standby, one started without standbys removes it; a
crash right after the standby was made, before any listing showed it, is replaced into it
(the worker asks the runtime, which made it).
Every test here fails on the code before standbys (no `standby` argument, no standby made);
the last one fails on the code before the worker asked the runtime (started again in place).

Every container carries a node name unique to the test and is removed by id afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.model import Assignments
from agent.restart_path import restart_path
from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import (
    LABEL_SANDBOX,
    LABEL_STANDBY,
    ContainerConfig,
    ContainerInfo,
    PortBinding,
    container_name,
)
from agent.runtime.sandbox import standby_config, standby_due
from agent.volume_files import VolumeFiles
from agent.worker import Worker
from kernel.clock import SystemClock
from tests.support import remove_container
from tests.unit.test_agent_worker import web_pod

pytestmark = pytest.mark.integration

IMAGE = "pinnace/httpd:latest"
DEADLINE = 30.0


@pytest.fixture
def node(docker_client: Any) -> Iterator[str]:
    name = f"stb-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        for c in docker_client.api.containers(all=True, filters={"label": f"pinnace.node={name}"}):
            remove_container(docker_client, c["Id"])


def config(node: str, pod: str = "p", host_port: int = 0) -> ContainerConfig:
    web = PortBinding(80, host_port=host_port)
    return ContainerConfig(
        name=container_name(node, pod, "web"),
        image=IMAGE,
        labels={"pinnace.node": node, "pinnace.pod": pod, "pinnace.container": "web"},
        env=(("PORT", "80"), ("MESSAGE", "web")),
        ports=(web,),
        pod_ports=(web,),
        host_ip="127.0.0.1",
        hostname=f"{pod}-0",
    )


def runtime(node: str, standby: bool = True) -> DockerRuntime:
    return DockerRuntime(node, pod_sandbox="multi", standby=standby)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 120))


async def until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def holders(client: Any, node: str) -> list[dict[str, Any]]:
    return [
        c
        for c in client.api.containers(all=True, filters={"label": f"pinnace.node={node}"})
        if LABEL_SANDBOX in c["Labels"]
    ]


async def with_standby(rt: DockerRuntime, cid: str) -> ContainerInfo:
    """The container as listed once its standby was made (the listing makes it)."""
    found: list[ContainerInfo] = []

    async def ready() -> bool:
        found[:] = [c for c in await rt.list_containers() if c.id == cid and c.standby_id]
        return bool(found)

    await until("its standby made", ready)
    return found[0]


def test_a_crashed_container_comes_back_joined_to_its_pods_standby(
    docker_client: Any, node: str
) -> None:
    async def scenario() -> None:
        rt = runtime(node)
        try:
            web = await rt.create_and_start(config(node))
            assert web.sandbox_id == "" and web.standby_id == ""
            listed = await with_standby(rt, web.id)

            (holder,) = holders(docker_client, node)
            assert holder["Id"] == listed.standby_id and holder["State"] == "running"
            assert holder["Labels"][LABEL_STANDBY] == "1"
            # The standby is nobody's container in the agent's listing.
            assert [c.id for c in await rt.list_containers()] == [web.id]

            docker_client.api.kill(web.id)

            async def exited() -> bool:
                seen = [c for c in await rt.list_containers() if c.id == web.id]
                return bool(seen) and not seen[0].alive

            await until("the container exited", exited)
            (dead,) = [c for c in await rt.list_containers() if c.id == web.id]
            path = restart_path(dead, config(node), immediate=True)
            assert not path.in_place
            again = await rt.replace(web.id, config(node))

            assert again.state == "running" and again.sandbox_id == holder["Id"]
            # Its port is the standby's, published while the old one ran: it answers there.
            assert set(again.ports) == {"80/TCP"} and again.ports["80/TCP"] > 0
            ok = await rt.exec(again.id, ("wget", "-qO-", "http://127.0.0.1:80/healthz"))
            assert (ok.exit_code, ok.output.strip()) == (0, "ok")
            assert [c.id for c in await rt.list_containers()] == [again.id]
            assert [h["Id"] for h in holders(docker_client, node)] == [holder["Id"]]
            # Made under a name of its own (the dead one was not renamed first: the engine
            # answers that only after its network cleanup), listed under the pod's name at
            # once, and given it in the engine once the dead one is gone.
            assert again.name == config(node).name
            assert [c.name for c in await rt.list_containers()] == [config(node).name]

            async def named() -> bool:
                got = docker_client.api.inspect_container(again.id)["Name"]
                return bool(got == f"/{config(node).name}")

            await until("the replacement named as its container", named)
        finally:
            await rt.close()

    run(scenario)


def test_deleting_the_pod_removes_its_standby(docker_client: Any, node: str) -> None:
    async def scenario() -> None:
        rt = runtime(node)
        try:
            web = await rt.create_and_start(config(node))
            await with_standby(rt, web.id)
            await rt.stop(web.id, 1)
            await rt.remove(web.id)
            assert holders(docker_client, node) == []
            assert (
                docker_client.api.containers(all=True, filters={"label": f"pinnace.node={node}"})
                == []
            )
        finally:
            await rt.close()

    run(scenario)


def test_a_pod_with_a_fixed_host_port_gets_no_standby(docker_client: Any, node: str) -> None:
    async def scenario() -> None:
        rt = runtime(node)
        try:
            # A standby of another pod made after it shows the engine was quiet long enough.
            fixed = await rt.create_and_start(config(node, "f", host_port=18931))
            web = await rt.create_and_start(config(node))
            await with_standby(rt, web.id)
            assert [h["Labels"]["pinnace.pod"] for h in holders(docker_client, node)] == ["p"]
            assert [c.standby_id for c in await rt.list_containers() if c.id == fixed.id] == [""]
        finally:
            await rt.close()

    run(scenario)


def test_an_agent_started_again_adopts_the_standby_and_one_without_standbys_removes_it(
    docker_client: Any, node: str
) -> None:
    async def scenario() -> None:
        first = runtime(node)
        try:
            web = await first.create_and_start(config(node))
            standby = (await with_standby(first, web.id)).standby_id
        finally:
            await first.close()
        again = runtime(node)
        try:
            (listed,) = await again.list_containers()
            assert (listed.id, listed.standby_id) == (web.id, standby)
            assert [h["Id"] for h in holders(docker_client, node)] == [standby]
        finally:
            await again.close()
        without = runtime(node, standby=False)
        try:
            (listed,) = await without.list_containers()
            assert (listed.id, listed.standby_id, listed.alive) == (web.id, "", True)
            assert holders(docker_client, node) == []
        finally:
            await without.close()

    run(scenario)


def test_an_agent_started_again_makes_the_standby_of_a_running_pod_that_had_none(
    docker_client: Any, node: str
) -> None:
    """An agent that died before the standby of a running pod was made (here: the standby
    removed while no agent ran): the next one makes it from the facts the container carries,
    the same holder the first would have made, and the pod's crash is replaced into it."""

    async def scenario() -> None:
        first = runtime(node)
        try:
            web = await first.create_and_start(config(node))
            await with_standby(first, web.id)
        finally:
            await first.close()
        for h in holders(docker_client, node):
            remove_container(docker_client, h["Id"])
        again = runtime(node)
        try:
            listed = await with_standby(again, web.id)
            (holder,) = holders(docker_client, node)
            assert holder["Id"] == listed.standby_id and holder["State"] == "running"
            made = standby_config(config(node), node)
            assert holder["Labels"][LABEL_SANDBOX] == made.labels[LABEL_SANDBOX]

            docker_client.api.kill(web.id)

            async def exited() -> bool:
                seen = [c for c in await again.list_containers() if c.id == web.id]
                return bool(seen) and not seen[0].alive

            await until("the container exited", exited)
            (dead,) = [c for c in await again.list_containers() if c.id == web.id]
            assert not restart_path(dead, config(node), immediate=True).in_place
            replaced = await again.replace(web.id, config(node))
            assert replaced.sandbox_id == holder["Id"] and replaced.state == "running"
        finally:
            await again.close()

    run(scenario)


def test_a_container_started_again_in_place_before_its_standby_was_made_gets_one(
    docker_client: Any, node: str
) -> None:
    """A crash within the second before the standby is made: the agent's listing sees the
    container dead (its ask for a standby dropped), the worker starts it again in place;
    the standby is made for it from its facts all the same."""

    async def scenario() -> None:
        rt = runtime(node)
        try:
            web = await rt.create_and_start(config(node))
            docker_client.api.kill(web.id)

            async def dead() -> bool:
                seen = [c for c in await rt.list_containers() if c.id == web.id]
                return bool(seen) and not seen[0].alive

            await until("the container listed dead", dead)
            assert holders(docker_client, node) == []  # killed before its standby was made
            again = await rt.restart_in_place(web.id, config(node).name)
            assert again.id == web.id and again.alive
            listed = await with_standby(rt, web.id)
            (holder,) = holders(docker_client, node)
            assert holder["Id"] == listed.standby_id
        finally:
            await rt.close()

    run(scenario)


def test_a_crash_right_after_its_standby_was_made_is_replaced_into_it_before_any_listing(
    docker_client: Any, node: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The agent's worker (stepped: it lists only when told) on the real engine, following
    its events. The listing that asks for the pod's standby is the last one: the standby is
    made after it, and the container is killed as soon as the standby runs, before any
    listing could show it. The die event's restart is decided from that last listing, which
    gave the container no standby; the runtime made it, and says so (standby_of): the
    replacement joins it. On the code before, the worker started the container again in
    place (same id, a network of its own)."""
    caplog.set_level(logging.INFO, logger="agent.runtime.docker_runtime")

    async def scenario() -> None:
        rt = runtime(node)
        worker = Worker(
            rt, "127.0.0.1", SystemClock(), lambda _: None, files=VolumeFiles(str(tmp_path), node)
        )
        events = asyncio.create_task(worker.watch_events())
        try:
            worker.set_assignments(Assignments(1, (web_pod("p"),)))
            await worker.iterate()
            await worker.settle()
            quiet_from = time.monotonic()  # its create and start are done
            await worker.iterate()
            (web,) = [c for c in worker.state.pods.observed if c.pod == "p"]
            assert web.alive and not web.standby_id

            async def quiet() -> bool:
                return standby_due(time.monotonic(), 0, quiet_from)

            await until("the engine quiet long enough for a standby", quiet)
            await worker.iterate()  # the last listing: it asks for the standby
            (listed,) = [c for c in worker.state.pods.observed if c.pod == "p"]
            assert listed.id == web.id and not listed.standby_id

            async def standby_running() -> bool:
                # The engine's own list (not the agent's), and the runtime's line saying it
                # made it (once its start returned).
                made = any(h["State"] == "running" for h in holders(docker_client, node))
                return made and "standby holder" in caplog.text

            await until("the standby made", standby_running)
            (standby,) = holders(docker_client, node)
            old_start = docker_client.api.inspect_container(web.id)["State"]["StartedAt"]
            docker_client.api.kill(web.id)

            def apps() -> list[dict[str, Any]]:
                return [
                    docker_client.api.inspect_container(c["Id"])
                    for c in docker_client.api.containers(
                        filters={"label": [f"pinnace.node={node}", "pinnace.pod=p"]}
                    )
                    if LABEL_SANDBOX not in c["Labels"]
                ]

            async def running_again() -> bool:
                return any(
                    c["Id"] != web.id or c["State"]["StartedAt"] != old_start for c in apps()
                )

            await until("the pod's container running again", running_again)
            await worker.settle()
            (again,) = apps()
            assert again["Id"] != web.id, "started again in place"
            assert again["HostConfig"]["NetworkMode"] == f"container:{standby['Id']}"
            assert "listed with its standby" not in caplog.text  # no listing showed it
        finally:
            events.cancel()
            await asyncio.gather(events, return_exceptions=True)
            await rt.close()

    run(scenario)
