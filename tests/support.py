"""What every test tier and benchmark shares about its surroundings: where the repository and
its seed manifests are, whether this run is CI, and where HAProxy is.

Why one module: a test that needs Docker or HAProxy skips on a laptop without them and fails
under CI, and that decision must mean the same thing everywhere (it used to be written four
times with two meanings). The seed manifests are the project's own copy (examples/seed/);
nothing here reaches outside the repository.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import docker.errors
import pytest

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "examples" / "seed"
# Debian installs haproxy in /usr/sbin, which a non-root user's PATH lacks.
HAPROXY_DIRS = "/usr/sbin:/usr/local/sbin"


def in_ci(environ: dict[str, str] | None = None) -> bool:
    """CI is any non-empty `CI` other than `0` or `false` (GitHub's `true`, GitLab's `1`, ...)."""
    value = (os.environ if environ is None else environ).get("CI", "").strip().lower()
    return value not in {"", "0", "false"}


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose real dependency is missing, or fail it under CI, where it must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: this test must run)", pytrace=False)
    pytest.skip(reason)


def build_images(*targets: str) -> None:
    """Build compose/images/build.sh's `targets` (seconds when they are already built), as
    `make images` and the demo do; a build that fails makes the test unavailable."""
    built = subprocess.run(
        ["bash", str(REPO / "compose" / "images" / "build.sh"), *targets],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    if built.returncode != 0:
        output = built.stdout[-2000:] + built.stderr[-2000:]
        unavailable(f"cannot build the images {', '.join(targets)}:\n{output}")


# What Docker on fuse-overlayfs answers after a removal of the same container failed half-way
# (another removal, or the engine's own log writer closing, still held its files); the next
# try succeeds.
_REMOVAL_FAILED_RACES = ("directory not empty",)
# What the engine answers while another removal of the container (an agent's, whose process
# may be gone: the engine carries the removal on) is still under way.
_REMOVAL_IN_PROGRESS = ("already in progress",)
_POLL = 0.1


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at the time of asking (the kernel's pick), for a process
    the test starts with an explicit port; a race with another binder is the test's to lose."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def remove_container(engine: Any, container_id: str, within: float = 60.0) -> None:
    """Force-remove one container of the docker-py client `engine`; one already gone is fine.

    Why not `remove(force=True)` alone: a removal racing another one fails. While another
    removal is in progress (409), this one waits for that removal's end instead of sending
    more removals beside it, then removes what is left, if anything. On this
    engine a removal that failed with 500 "unable to remove filesystem ... directory not
    empty" (a CI run's teardown error) succeeds when sent again. Either is given until
    `within` seconds have passed, then raised."""
    deadline = time.monotonic() + within
    while True:
        try:
            engine.api.remove_container(container_id, force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            said = str(exc.explanation or exc).lower()
            if any(race in said for race in _REMOVAL_IN_PROGRESS):
                _wait_removal_ended(engine, container_id, deadline)
                continue
            if time.monotonic() > deadline or not any(r in said for r in _REMOVAL_FAILED_RACES):
                raise
        time.sleep(_POLL)


def _wait_removal_ended(engine: Any, container_id: str, deadline: float) -> None:
    """Until the container is gone or no longer being removed; raises at `deadline`."""
    while True:
        try:
            state = engine.api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return
        if state.get("Status") != "removing":
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"container {container_id[:12]} still 'Removal In Progress' at the deadline: "
                "another removal of it hangs in the engine"
            )
        time.sleep(_POLL)


def engine_ghosts(engine: Any, listed: list[str]) -> list[str]:
    """Of the container ids in `listed` (all from one listing), those the engine cannot
    inspect though it still lists them: ghosts "Removal In Progress" that no removal
    reaches (a rename met a forced removal in dockerd: agent/runtime/keyed_lock.py)."""
    ghosts = []
    for container_id in listed:
        try:
            engine.api.inspect_container(container_id)
        except docker.errors.NotFound:
            if engine.api.containers(all=True, filters={"id": container_id}):
                ghosts.append(container_id)
    return ghosts


def ghosts_said(ghosts: list[str]) -> str:
    """One sentence naming engine ghosts (engine_ghosts) and what made and clears them."""
    return (
        f"the engine lists container(s) {', '.join(g[:12] for g in ghosts)} of test nodes "
        "'Removal In Progress' but cannot inspect or remove them: a rename met a forced "
        "removal in dockerd (agent/runtime/keyed_lock.py); only a restart of dockerd clears them"
    )


class FakeEngineClient:
    """What DockerRuntime's `client_factory` hands out around a unit test's fake low-level
    engine API: the runtime calls `client.api.<call>` and `client.close()`, nothing else."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def close(self) -> None:
        pass


async def until_async(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """In a coroutine: until `predicate()` holds, looking every millisecond; raises naming
    `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


# Node names the session's tests gave their agents (node_made), for sweep_nodes_made.
_nodes_made: set[str] = set()


def node_made(name: str) -> str:
    """Registers `name`, a node a test starts an agent as, for the session's last sweep."""
    _nodes_made.add(name)
    return name


def sweep_nodes_made(engine: Any, quiet: float = 1.0, within: float = 30.0) -> list[str]:
    """Removes what is left of the containers of every node registered by `node_made`; the
    ids removed.

    A test's teardown kills its agents and then removes their nodes' containers by id, but
    a create the engine was still serving when its agent was killed lands after that listing:
    a container left `Created` (seen twice at load 15-25). Once a session, the sweep lists
    again until a listing finds none `quiet` seconds or more after its first."""
    removed: list[str] = []
    start = time.monotonic()
    while _nodes_made:
        found = [
            c["Id"]
            for node in sorted(_nodes_made)
            for c in engine.api.containers(all=True, filters={"label": f"pinnace.node={node}"})
        ]
        for container_id in found:
            remove_container(engine, container_id)
        removed += found
        waited = time.monotonic() - start
        if not found and waited >= quiet:
            break
        if waited > within:
            ghosts = engine_ghosts(engine, found)
            if ghosts:
                raise AssertionError(ghosts_said(ghosts))
            raise AssertionError(f"containers of test nodes kept appearing for {within:.0f} s")
        time.sleep(0.1)
    return removed


# What the agent's pod sandbox holders carry (agent/runtime/port.py LABEL_SANDBOX): a holder
# shares its pod's labels but runs none of its containers (and has no shell to exec into).
HOLDER_LABEL = "pinnace.sandbox"


def app_containers(engine: Any, label: str, all: bool = False) -> list[Any]:
    """The containers labelled `label` (`pinnace.pod=web-1`, `pinnace.node=n1`) that run a
    pod's containers: its sandbox holder left out (SDK models; `all`: not only running)."""
    found = engine.containers.list(all=all, filters={"label": label})
    return [c for c in found if HOLDER_LABEL not in c.labels]


def network_settings(container: Any) -> dict[str, Any]:
    """The NetworkSettings of the namespace an SDK container model runs in (see below)."""
    return namespace_settings(container.client.api, container.attrs)


def namespace_settings(api: Any, attrs: dict[str, Any]) -> dict[str, Any]:
    """The NetworkSettings of the namespace an inspected container runs in: its own, or for
    one that joined its pod sandbox's holder (NetworkMode `container:<id>`), the holder's,
    which has the pod's addresses, networks and published ports."""
    mode = str(attrs["HostConfig"].get("NetworkMode") or "")
    if mode.startswith("container:"):
        holder = api.inspect_container(mode.removeprefix("container:"))
        return dict(holder["NetworkSettings"])
    return dict(attrs["NetworkSettings"])


def haproxy_path() -> str | None:
    """The haproxy binary: on PATH, else in the sbin folders Debian puts it in."""
    return shutil.which("haproxy") or shutil.which("haproxy", path=HAPROXY_DIRS)


def require_haproxy() -> str:
    """haproxy's path, or a skip (a failure under CI) naming the package to install."""
    found = haproxy_path()
    if found is None:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    return found


def env_with_haproxy(env: dict[str, str]) -> dict[str, str]:
    """`env` with haproxy's folder on PATH, so a master started with it finds the same binary."""
    found = haproxy_path()
    if found is None:
        return env
    folder = str(Path(found).parent)
    path = env.get("PATH", "")
    if folder in path.split(os.pathsep):
        return env
    return {**env, "PATH": os.pathsep.join(p for p in (path, folder) if p)}


# Printed after the command's own output by exec_output; an answer without it lost its output.
_EXEC_END = b"\n@@pinnace-exec-end\n"
_EXEC_SCRIPT = '"$@"; code=$?; printf "\\n@@pinnace-exec-end\\n"; exit $code'


class ExecOutputLost(AssertionError):
    """Docker returned a command's exit status without its output, and it may not run twice."""


def exec_output(
    container: Any, command: list[str], *, user: str = "", rerun: bool = True, tries: int = 5
) -> tuple[int, bytes]:
    """(exit status, stdout and stderr) of `command` run in the docker-py `container`.

    Why not `container.exec_run` alone: this engine now and then answers a short exec with its
    exit status and none of its output (moby/moby#27289, docker/docker-py#2042; measured here:
    9 of 1,000 `echo hello` execs came back as (0, b'') at load 14-26, and a volumes test failed
    on one at load 40). So the command runs under `sh` (every pod image has one) with an end
    marker printed after it: an answer without the marker lost its output. A command that may
    run again (`rerun`, the default: reads, and writes that leave the same result) runs again,
    up to `tries` times; any other raises ExecOutputLost instead of returning a wrong b''."""
    for _ in range(tries):
        code, out = container.exec_run(["sh", "-c", _EXEC_SCRIPT, "sh", *command], user=user)
        if out.endswith(_EXEC_END):
            return int(code), bytes(out[: -len(_EXEC_END)])
        if not rerun:
            break
    raise ExecOutputLost(
        f"Docker returned {command!r} without its output ({out!r}, exit status {code})"
    )
