"""The Runtime port's contract, run against FakeRuntime and DockerRuntime alike.

The Docker half needs an engine and pinnace/httpd:latest (the shared docker_client
fixture skips without them, and fails under CI=true); every container it creates
carries a node name unique to the test and is removed by id afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import (
    ContainerConfig,
    ContainerCreateError,
    ContainerInfo,
    ExecResult,
    ImagePullError,
    LogOptions,
    PortBinding,
    Runtime,
    RuntimeEvent,
    RuntimeFailure,
    container_name,
)
from tests.support import remove_container

IMAGE = "pinnace/httpd:latest"
# A registry on a closed local port: the pull fails at once, and no traffic leaves the host.
MISSING = "127.0.0.1:9/pinnace-agent-test/does-not-exist:1"


@dataclass
class Backend:
    make: Callable[[str], Runtime]
    crash: Callable[[str], None]
    # What a container's process prints at start (the fake's; a real one prints it itself).
    prints: Callable[[str, bytes], None] = lambda cid, data: None
    nodes: list[str] = field(default_factory=list)

    def node(self, prefix: str = "ct") -> tuple[str, Runtime]:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.nodes.append(name)
        return name, self.make(name)


@pytest.fixture(
    params=[
        "fake",
        pytest.param("docker", marks=pytest.mark.integration),
        # Pods in sandboxes (the agent's --pod-sandbox): the same contract, each pod's
        # containers joined to a holder's network namespace (agent/runtime/sandbox.py).
        pytest.param("docker-sandbox", marks=pytest.mark.integration),
    ]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "fake":
        engine = FakeEngine(die_details=True)  # its events say what Docker's do
        engine.present_images.add(IMAGE)
        yield Backend(
            lambda node: FakeRuntime(node, engine),
            lambda cid: engine.crash(cid, 137),
            engine.write_log,
        )
        return
    from agent.runtime.docker_runtime import DockerRuntime

    client: Any = request.getfixturevalue("docker_client")
    sandbox = request.param == "docker-sandbox"
    backend = Backend(
        lambda node: DockerRuntime(node, pod_sandbox="all" if sandbox else "none"),
        lambda cid: client.api.kill(cid),
    )
    try:
        yield backend
    finally:
        for node in backend.nodes:
            for c in client.api.containers(all=True, filters={"label": f"pinnace.node={node}"}):
                remove_container(client, c["Id"])


def config(node: str, pod: str = "p", host_port: int = 0) -> ContainerConfig:
    return ContainerConfig(
        name=container_name(node, pod, "web"),
        image=IMAGE,
        labels={"pinnace.node": node, "pinnace.pod": pod, "pinnace.container": "web"},
        env=(("MESSAGE", "contract"),),
        ports=(PortBinding(80, "TCP", host_port),),
        host_ip="127.0.0.1",
        mem_limit=64 * 2**20,
    )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_images_present_are_ensured_and_missing_ones_fail_with_a_message(backend: Backend) -> None:
    async def scenario() -> None:
        _, rt = backend.node()
        assert await rt.ensure_image(IMAGE) == ""
        # Always: a pull is tried; no registry has this locally built image, so the
        # present one is used and the runtime says why.
        note = await rt.ensure_image(IMAGE, "Always")
        assert note.startswith(f"could not pull {IMAGE} (")
        assert note.endswith("using the image already on the node")
        with pytest.raises(ImagePullError, match="does-not-exist"):
            await rt.ensure_image(MISSING)
        with pytest.raises(ImagePullError, match="Never"):
            await rt.ensure_image(MISSING, "Never")
        await rt.close()

    run(scenario)


def test_create_start_list_inspect_stop_remove(backend: Backend) -> None:
    async def scenario() -> None:
        node, rt = backend.node()
        info = await rt.create_and_start(config(node))

        assert info.state == "running" and info.alive
        assert (info.pod, info.container, info.name) == (
            "p",
            "web",
            container_name(node, "p", "web"),
        )
        assert info.ports["80/TCP"] > 0
        assert info.started_at > 0
        assert [c.id for c in await rt.list_containers()] == [info.id]
        inspected = await rt.inspect(info.id)
        assert inspected is not None and inspected.ports == info.ports

        await rt.stop(info.id, 2)
        stopped = await rt.inspect(info.id)
        assert stopped is not None and stopped.dead and stopped.finished_at >= stopped.started_at
        listed = await rt.list_containers()
        assert [(c.id, c.state) for c in listed] == [(info.id, stopped.state)]

        await rt.remove(info.id)
        assert await rt.inspect(info.id) is None
        assert await rt.list_containers() == []
        await rt.remove(info.id)  # removing what is gone is fine
        await rt.stop(info.id, 1)
        await rt.close()

    run(scenario)


def test_stats_read_a_running_container_and_nothing_once_it_stopped(backend: Backend) -> None:
    async def scenario() -> None:
        node, rt = backend.node()
        info = await rt.create_and_start(config(node))

        reading = await rt.stats(info.id)
        assert reading is not None
        assert reading.cpu_ns >= 0 and 0 <= reading.memory_bytes <= 64 * 2**20

        await rt.stop(info.id, 2)
        assert await rt.stats(info.id) is None
        await rt.remove(info.id)
        assert await rt.stats(info.id) is None
        await rt.close()

    run(scenario)


def test_a_node_never_sees_or_touches_another_nodes_containers(backend: Backend) -> None:
    async def scenario() -> None:
        node_a, a = backend.node()
        _, b = backend.node()
        info = await a.create_and_start(config(node_a))

        assert await b.list_containers() == []
        assert await b.inspect(info.id) is None
        await b.stop(info.id, 1)
        await b.remove(info.id)

        still = await a.inspect(info.id)
        assert still is not None and still.state == "running"
        await a.close()
        await b.close()

    run(scenario)


def test_a_stale_container_with_the_same_name_is_replaced(backend: Backend) -> None:
    async def scenario() -> None:
        node, rt = backend.node()
        first = await rt.create_and_start(config(node))

        second = await rt.create_and_start(config(node))

        assert second.id != first.id
        assert [c.id for c in await rt.list_containers()] == [second.id]
        await rt.close()

    run(scenario)


def test_work_given_to_replace_still_finds_the_dead_container(backend: Backend) -> None:
    # The agent is told the replacement runs (`ran`, where it reports it), then keeps the
    # crashed container's log: the dead container must still be there for that work, and
    # gone once replace returns.
    async def scenario() -> None:
        node, rt = backend.node()
        dead = await rt.create_and_start(config(node))
        backend.crash(dead.id)
        seen: list[str | None] = []

        async def read_the_dead_one() -> None:
            info = await rt.inspect(dead.id)
            seen.append(info.id if info else None)

        fresh = await rt.replace(
            dead.id, config(node), read_the_dead_one, lambda info: seen.append(f"ran {info.id}")
        )

        assert seen == [f"ran {fresh.id}", dead.id]
        assert [c.id for c in await rt.list_containers()] == [fresh.id]
        await rt.close()

    run(scenario)


def test_a_name_held_by_another_nodes_container_is_not_taken_over(backend: Backend) -> None:
    async def scenario() -> None:
        owner, rt_owner = backend.node()
        other, rt_other = backend.node()
        held = await rt_owner.create_and_start(config(owner))
        same_name = replace(config(owner), labels={**config(owner).labels, "pinnace.node": other})

        with pytest.raises(ContainerCreateError, match="another node"):
            await rt_other.create_and_start(same_name)

        assert [c.id for c in await rt_owner.list_containers()] == [held.id]
        assert await rt_other.list_containers() == []
        await rt_owner.close()
        await rt_other.close()

    run(scenario)


def test_a_dead_container_is_replaced_by_a_fresh_one_under_its_name(backend: Backend) -> None:
    async def scenario() -> None:
        node, rt = backend.node()
        dead = await rt.create_and_start(config(node))
        backend.crash(dead.id)

        fresh = await rt.replace(dead.id, config(node))

        assert fresh.id != dead.id and fresh.state == "running"
        assert fresh.name == container_name(node, "p", "web")
        assert [c.id for c in await rt.list_containers()] == [fresh.id]  # the dead one is gone
        # A failed replacement still removes the dead container.
        broken = replace(config(node), image=MISSING)
        with pytest.raises(ContainerCreateError):
            await rt.replace(fresh.id, broken)
        assert await rt.list_containers() == []
        await rt.close()

    run(scenario)


def test_a_dead_container_started_again_in_place_keeps_its_id_and_shows_its_new_run(
    backend: Backend,
) -> None:
    async def scenario() -> None:
        node, rt = backend.node()
        # Each run prints one line as it starts.
        counting = replace(
            config(node),
            entrypoint=("sh", "-c", "echo run; exec /bin/pinnace-httpd"),
        )
        dead = await rt.create_and_start(counting)
        backend.prints(dead.id, b"run\n")
        await _wait_for_log(rt, dead.id, b"run\n")
        backend.crash(dead.id)
        await _wait_until_dead(rt, dead.id)

        again = await rt.restart_in_place(dead.id, counting.name)

        assert (again.id, again.state) == (dead.id, "running")
        assert again.name.startswith(f"{counting.name}.restarted-") and again.restarted_at
        assert again.restart_count == dead.restart_count + 1
        assert again.started_at > dead.started_at and "80/TCP" in again.ports
        # Its log is its current run only; `until` the restart reads the run before.
        backend.prints(dead.id, b"run\n")
        await _wait_for_log(rt, dead.id, b"run\n")
        before = LogOptions(until=again.restarted_at)
        assert b"".join([c async for c in rt.logs(dead.id, before)]).count(b"run\n") == 1
        assert b"".join([c async for c in rt.logs(dead.id, LogOptions())]).count(b"run\n") == 1
        listed = {c.id: c for c in await rt.list_containers()}
        assert listed[dead.id].restart_count == 1 and listed[dead.id].state == "running"
        # One that cannot start again says so (the agent then replaces it).
        backend.crash(dead.id)
        await _wait_until_dead(rt, dead.id)
        await rt.remove(dead.id)
        with pytest.raises(ContainerCreateError):
            await rt.restart_in_place(dead.id, counting.name)
        await rt.close()

    run(scenario)


async def _wait_for_log(rt: Runtime, cid: str, wanted: bytes) -> None:
    """Until the container's (current run's) log holds `wanted`; the contract's 60 s bound."""
    while wanted not in b"".join([c async for c in rt.logs(cid, LogOptions())]):
        await asyncio.sleep(0.05)


async def _wait_until_dead(rt: Runtime, cid: str) -> None:
    while (info := await rt.inspect(cid)) is not None and info.alive:
        await asyncio.sleep(0.05)


def test_a_taken_host_port_fails_cleanly(backend: Backend) -> None:
    async def scenario() -> None:
        node, rt = backend.node()
        first = await rt.create_and_start(config(node, "p1"))
        port = first.ports["80/TCP"]

        with pytest.raises(ContainerCreateError):
            await rt.create_and_start(config(node, "p2", host_port=port))

        assert [c.pod for c in await rt.list_containers()] == ["p1"]
        await rt.close()

    run(scenario)


async def _until_attached(rt: Runtime, node: str, seen: list[RuntimeEvent]) -> None:
    """Until the event stream is attached (its first call can take seconds on a loaded
    machine): a probe container of this node, started and removed until its events show;
    `seen` is emptied once the probe's die is in it."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        probe = await rt.create_and_start(config(node, "probe"))
        for _ in range(20):
            if any(e.container_id == probe.id for e in seen):
                break
            await asyncio.sleep(0.05)
        await rt.remove(probe.id)
        if any(e.container_id == probe.id for e in seen):
            break
        assert asyncio.get_running_loop().time() < deadline, "the event stream never attached"
    while not any(e.container_id == probe.id and e.action == "die" for e in seen):
        assert asyncio.get_running_loop().time() < deadline, f"no die of the probe: {seen}"
        await asyncio.sleep(0.05)
    seen.clear()


def test_events_report_start_and_die_of_this_nodes_containers(backend: Backend) -> None:
    async def scenario() -> None:
        node, rt = backend.node()
        other_node, other = backend.node()
        seen: list[RuntimeEvent] = []
        # The container inspected as soon as its die event came: the exit is recorded by
        # then (the agent decides the restart from that answer, agent/deaths.py).
        at_die: list[tuple[str, ContainerInfo | None]] = []

        async def watch() -> None:
            async for event in rt.events():
                seen.append(event)
                if event.action == "die":
                    at_die.append((event.container_id, await rt.inspect(event.container_id)))

        watcher = asyncio.create_task(watch())
        await _until_attached(rt, node, seen)
        await other.create_and_start(config(other_node))
        info = await rt.create_and_start(config(node))
        backend.crash(info.id)
        deadline = asyncio.get_running_loop().time() + 10
        while [e.action for e in seen] != ["start", "die"] or info.id not in dict(at_die):
            assert asyncio.get_running_loop().time() < deadline, seen
            await asyncio.sleep(0.05)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

        assert {(e.container_id, e.pod, e.container) for e in seen} == {(info.id, "p", "web")}
        # (The probe's die, from _until_attached, may be in at_die too.)
        (dead,) = [found for cid, found in at_die if cid == info.id]
        assert dead is not None and dead.dead and dead.exit_code == 137
        assert dead.started_at == info.started_at and dead.finished_at >= dead.started_at
        # The event says when the engine saw the exit (the restart spans begin there).
        (died,) = [e for e in seen if e.action == "die"]
        assert abs(died.at - dead.finished_at) < 5.0, (died.at, dead.finished_at)
        # It says how the container ended and what it was called, as the inspect does: the
        # agent decides an immediate restart from the event alone (agent/death_events.py).
        assert (died.exit_code, died.name) == (dead.exit_code, dead.name)
        await rt.close()
        await other.close()

    run(scenario)


def test_exec_runs_a_command_in_a_running_container_and_reports_how_it_ended(
    backend: Backend,
) -> None:
    failing = ("sh", "-c", "echo not ready; exit 3")

    async def scenario() -> None:
        node, rt = backend.node()
        if isinstance(rt, FakeRuntime):  # the fake is told what the real engine does
            rt.engine.exec_results[failing] = ExecResult(3, "not ready\n")
        info = await rt.create_and_start(config(node))

        passed = await rt.exec(info.id, ("true",))
        failed = await rt.exec(info.id, failing)
        await rt.stop(info.id, 1)

        assert passed.exit_code == 0
        assert (failed.exit_code, failed.output) == (3, "not ready\n")
        with pytest.raises(RuntimeFailure, match="cannot exec"):
            await rt.exec(info.id, ("true",))
        await rt.close()

    run(scenario)


def test_an_interactive_exec_streams_stdin_and_output_and_ends_with_its_exit_code(
    backend: Backend,
) -> None:
    echo = ("sh", "-c", "echo ready; cat")
    failing = ("sh", "-c", "exit 5")

    async def collect(session: Any) -> bytes:
        return b"".join([data async for _, data in session.output()])

    async def scenario() -> None:
        node, rt = backend.node()
        if isinstance(rt, FakeRuntime):
            rt.engine.exec_results[echo] = ExecResult(0, "ready\n")
            rt.engine.exec_results[failing] = ExecResult(5)
        info = await rt.create_and_start(config(node))

        session = await rt.open_exec(info.id, echo, stdin=True, tty=False)
        reading = asyncio.create_task(collect(session))
        await session.write(b"abc\n")
        await session.close_stdin()
        assert await reading == b"ready\nabc\n"
        assert await session.exit_code() == 0
        await session.close()

        session = await rt.open_exec(info.id, failing, stdin=False, tty=False)
        assert await collect(session) == b""
        assert await session.exit_code() == 5
        await session.close()

        await rt.stop(info.id, 1)
        with pytest.raises(RuntimeFailure, match="cannot exec"):
            await rt.open_exec(info.id, ("true",), stdin=False, tty=False)
        await rt.close()

    run(scenario)
