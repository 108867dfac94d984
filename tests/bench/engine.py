"""The Docker side of the bench: polling the engine, and the two baselines.

Every system is timed the same way, on two clocks (`Timing`): from the ask until the
engine itself lists N running containers carrying the system's label, polled through
the Docker SDK every 50 ms (cheap next to a CLI round trip; `seen`), and from the ask
(wall clock) to the engine's own State.StartedAt of the last of those containers
(`engine`). Only the engine clock treats every system alike: a `docker run` has
returned once its container started, so its poll finds them running at once, while a
system that starts containers on its own (pinnace, Swarm) is found 0-50 ms after its
last start by the poll. The baselines are what a user would
type: `docker run -d` N times one after another, the same N `docker run -d` started
all at once (the engine's own limit on this machine: nothing can start N containers
faster through it), and `docker service create` on a
single-node Swarm that this module initialises only when the engine is not
already in one, and leaves again (also from atexit) only when it created it.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import docker

from tests.bench.engine_spans import Spans, read_spans

IMAGE = "nginx:latest"
POLL_INTERVAL = 0.05
BENCH_LABEL = "pinnace.bench"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
# What a pinnace pod sandbox's holder carries (agent/runtime/port.py LABEL_SANDBOX).
HOLDER_LABEL = "pinnace.sandbox"


class BenchError(Exception):
    """A system under test did not reach the state the bench waits for."""


class Timing(NamedTuple):
    """One trial, in seconds from the ask: when the bench's poll first found all N
    running, and when the engine says the last of them started."""

    seen: float
    engine: float
    # Where the time went (tests/bench/engine_spans.py), when the engine's events said.
    spans: Spans | None = None


def started_at(text: str) -> float:
    """The engine's State.StartedAt ("2026-12-01T16:00:00.123456789Z", RFC 3339 with up to
    nanoseconds) as seconds since the epoch, to the microsecond; BenchError for a container
    that never started (Docker's zero time)."""
    if not text or text.startswith("0001-"):
        raise BenchError(f"container not started (StartedAt {text!r})")
    head, dot, rest = text.partition(".")
    if not dot:  # whole seconds: the zone follows them
        head, rest = text[:19], text[19:]
    zone = rest.lstrip("0123456789")
    digits = rest[: len(rest) - len(zone)]
    when = datetime.fromisoformat(head + zone.replace("Z", "+00:00"))
    return when.timestamp() + (int(digits[:9].ljust(9, "0")) / 1e9 if digits else 0.0)


def last_start(client: docker.DockerClient, containers: Sequence[dict[str, Any]]) -> float:
    """The latest State.StartedAt (seconds since the epoch) of the listed containers."""
    if not containers:
        raise BenchError("no containers to read a start time from")
    return max(
        started_at(str(client.api.inspect_container(c["Id"])["State"]["StartedAt"]))
        for c in containers
    )


def list_containers(
    client: docker.DockerClient, label: str, running_only: bool = True, holders: bool = False
) -> list[dict[str, Any]]:
    """The engine's container list (one API call; the SDK's model list inspects each).
    A pinnace pod's sandbox holder (label pinnace.sandbox) is no container of the pod's:
    left out unless `holders`."""
    filters: dict[str, Any] = {"label": label}
    if running_only:
        filters["status"] = "running"
    found: list[dict[str, Any]] = client.api.containers(all=not running_only, filters=filters)
    return [c for c in found if holders or HOLDER_LABEL not in (c.get("Labels") or {})]


def running_count(client: docker.DockerClient, label: str) -> int:
    return len(list_containers(client, label))


def any_count(client: docker.DockerClient, label: str) -> int:
    """Containers of `label` in any state, pod sandbox holders too."""
    return len(list_containers(client, label, running_only=False, holders=True))


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll `check` every 50 ms; return the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def settle(client: docker.DockerClient, quiet: float = 0.3, within: float = 15.0) -> float | None:
    """Waits until the engine reports no event for `quiet` seconds; the seconds waited, or
    None when it was not quiet once within `within` (the trial then starts anyway).

    Why: the trials run back to back, and a system asked while the engine still removes the
    previous trial's containers shares the engine with that teardown. At 3 replicas that
    tail moved the figures by ~100 ms and decided which tree looked faster (issue 15: the
    new CLI sent sooner yet its last start came later in 6 of 8 back-to-back pairs, and
    earlier in 7 of 8 with a pause before each). Every event counts, other users' too: the
    engine is shared, and their work is what the pause waits out."""
    start = time.time()
    while True:
        if engine_quiet(client, quiet):
            return time.time() - start
        if time.time() - start > within:
            return None


class Clear(NamedTuple):
    """How the wait before a trial ended: the seconds waited; whether the engine was found
    clear (none of the watched containers left, then a quiet window); what was left when
    it was not (container ids, empty when only the events kept coming)."""

    waited: float
    clear: bool
    left: tuple[str, ...] = ()


def wait_clear(
    leftovers: Callable[[], Sequence[str]],
    quiet: Callable[[], bool],
    within: float,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
    quiet_within: float = 15.0,
) -> Clear:
    """Waits until `leftovers()` (the previous trials' containers, pod sandbox holders and
    standbys included) is empty and then `quiet()` (one window of the engine without an
    event) holds; a quiet window that saw an event is followed by a fresh look at the
    containers, since that event may have been one of them being made. Gives up after
    `within` seconds, or after `quiet_within` seconds of windows with events and nothing
    left (the engine is shared: other users' work may never pause; settle's bound); the
    trial then starts anyway and says so.

    Why both: the engine being quiet for a moment says nothing of a container that is
    simply left over. A pinnace pod's standby holder (agent/runtime/sandbox.py) is made
    once its pod has run and the agent's engine work has been quiet for a second, and is
    removed after the pod's container by a later sweep: a holder left after the trial's
    containers are gone sits there without an event, and the next system's trial shared
    the engine with its removal, or with a standby made meanwhile (issue 15: the trials
    were not independent). Pure but for the calls it is given."""
    start = clock()
    nothing_left_since: float | None = None
    while True:
        left = tuple(leftovers())
        if left:
            nothing_left_since = None
        elif quiet():
            return Clear(clock() - start, True)
        elif nothing_left_since is None:
            nothing_left_since = clock()
        elif clock() - nothing_left_since >= quiet_within:
            return Clear(clock() - start, False)
        if clock() - start >= within:
            return Clear(clock() - start, False, left)
        if left:
            pause(POLL_INTERVAL)


def engine_quiet(client: docker.DockerClient, quiet: float) -> bool:
    """Whether the engine reports no event for the next `quiet` seconds (one window)."""
    since = time.time()
    # The engine holds the stream open until `until`, then ends it: a window's events.
    # Times as the API's "seconds.nanoseconds" strings: the SDK's stubs say datetime or
    # int, and it turns a datetime into whole seconds, too coarse for a 0.3 s window.
    window = client.events(  # type: ignore[call-overload]
        since=f"{since:.9f}", until=f"{since + quiet:.9f}", decode=True
    )
    return not any(True for _ in window)


def leftover_containers(client: docker.DockerClient, labels: Sequence[str]) -> list[str]:
    """Ids of the containers, in any state and pod sandbox holders included, that carry
    any of `labels` (one list call each)."""
    return [
        str(c["Id"])
        for label in labels
        for c in list_containers(client, label, running_only=False, holders=True)
    ]


def clear_for_trial(
    client: docker.DockerClient, labels: Sequence[str], quiet: float = 0.3, within: float = 60.0
) -> Clear:
    """`wait_clear` on the real engine: none of `labels`' containers left, then `quiet`
    seconds without an event (other users' events count too: the engine is shared)."""
    return wait_clear(
        lambda: leftover_containers(client, labels), lambda: engine_quiet(client, quiet), within
    )


def docker_cli(*args: str, timeout: float = 120.0) -> str:
    """Run the docker CLI as a user would; its stdout, or BenchError with its stderr."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise BenchError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Defer SIGINT and SIGTERM until the block is done.

    Cleanup must not be cut in half by a second Ctrl-C: a pending signal is
    delivered (as KeyboardInterrupt) right after the block. Blocks under it must not
    start child processes, which would inherit the blocked mask.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def remove_containers(client: docker.DockerClient, label: str) -> None:
    for container in list_containers(client, label, running_only=False, holders=True):
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(container["Id"], force=True)


def machine_info(client: docker.DockerClient) -> dict[str, Any]:
    version = client.version()
    info = client.info()
    return {
        "docker": f"{version.get('Version', '?')} (API {version.get('ApiVersion', '?')})",
        "storage": info.get("Driver", "?"),
        "kernel": info.get("KernelVersion", "?"),
        "swarm": info.get("Swarm", {}).get("LocalNodeState", "?"),
    }


# -- plain docker run ----------------------------------------------------------------


def time_docker_run(
    client: docker.DockerClient, run_id: str, trial: str, replicas: int, timeout: float
) -> Timing:
    """`docker run -d -p 127.0.0.1::80` N times in a row; until all N run."""
    label = f"{BENCH_LABEL}.trial={trial}"
    ids: list[str] = []
    try:
        start, start_wall = time.monotonic(), time.time()
        for _ in range(replicas):
            ids.append(
                docker_cli(
                    "run",
                    "-d",
                    "-p",
                    "127.0.0.1::80",
                    "--label",
                    f"{BENCH_LABEL}={run_id}",
                    "--label",
                    label,
                    IMAGE,
                ).strip()
            )
        end = wait_until(
            f"{replicas} docker-run containers running",
            lambda: running_count(client, label) >= replicas,
            timeout,
        )
        return Timing(end - start, last_start(client, list_containers(client, label)) - start_wall)
    finally:
        with shielded():
            for container_id in ids:
                with contextlib.suppress(docker.errors.APIError):
                    client.api.remove_container(container_id, force=True)
            # A run interrupted between `docker run` and reading its id leaves a labelled one.
            remove_containers(client, label)


def time_docker_run_parallel(
    client: docker.DockerClient, run_id: str, trial: str, replicas: int, timeout: float
) -> Timing:
    """N `docker run -d -p 127.0.0.1::80` processes started at once; until all N run."""
    label = f"{BENCH_LABEL}.trial={trial}"
    cmd = ["docker", "run", "-d", "-p", "127.0.0.1::80", "--label", f"{BENCH_LABEL}={run_id}"]
    cmd += ["--label", label, IMAGE]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        start, start_wall = time.monotonic(), time.time()
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(replicas)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise BenchError(f"docker run failed: {err.decode().strip()}")
        end = wait_until(
            f"{replicas} parallel docker-run containers running",
            lambda: running_count(client, label) >= replicas,
            timeout,
        )
        engine = last_start(client, list_containers(client, label)) - start_wall
        return Timing(end - start, engine, read_spans(client, start_wall, label))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with shielded():
            remove_containers(client, label)


# -- Docker Swarm --------------------------------------------------------------------


class SwarmSession:
    """A single-node Swarm on the local engine, left again only if we created it."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.created = False
        self._had_gwbridge = False
        self._services: set[str] = set()

    def start(self) -> str | None:
        """Init the swarm; a reason string when the swarm part must be skipped."""
        state = self.client.info().get("Swarm", {}).get("LocalNodeState", "")
        if state != "inactive":
            return f"the engine is already in a swarm (state {state!r}); not touching it"
        self._had_gwbridge = bool(self.client.networks.list(names=["docker_gwbridge"]))
        # Registered before init so an interrupt mid-init still leaves the swarm.
        atexit.register(self.close)
        self.created = True
        docker_cli(
            "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"
        )
        return None

    def time_service(self, name: str, replicas: int, timeout: float) -> Timing:
        """`docker service create --replicas N`; until N task containers run."""
        label = f"{SWARM_SERVICE_LABEL}={name}"
        self._services.add(name)
        try:
            start, start_wall = time.monotonic(), time.time()
            docker_cli(
                "service",
                "create",
                "--detach",
                "--no-resolve-image",
                "--replicas",
                str(replicas),
                "--name",
                name,
                IMAGE,
            )
            end = wait_until(
                f"{replicas} swarm tasks running",
                lambda: running_count(self.client, label) >= replicas,
                timeout,
            )
            engine = last_start(self.client, list_containers(self.client, label)) - start_wall
        except BaseException:
            with shielded():
                self._remove_service(name)
            raise
        self._remove_service(name)
        # Swarm removes a service's containers asynchronously; the next trial starts clean.
        wait_until(
            f"service {name}'s containers gone", lambda: any_count(self.client, label) == 0, timeout
        )
        return Timing(end - start, engine)

    def _remove_service(self, name: str) -> None:
        api: Any = self.client.api  # types-docker leaves remove_service untyped
        with contextlib.suppress(docker.errors.APIError):
            api.remove_service(name)

    def close(self) -> None:
        """Remove our services, leave the swarm, remove what the leave left behind."""
        with shielded():
            if not self.created:
                return
            self.created = False
            for name in self._services:
                self._remove_service(name)
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.leave_swarm(force=True)
            for name in self._services:
                remove_containers(self.client, f"{SWARM_SERVICE_LABEL}={name}")
            # swarm init made docker_gwbridge; leave the engine's networks as we found them.
            if not self._had_gwbridge:
                for net in self.client.networks.list(names=["docker_gwbridge"]):
                    with contextlib.suppress(docker.errors.APIError):
                        net.remove()
