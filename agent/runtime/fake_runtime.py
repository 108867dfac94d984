"""FakeRuntime: the Runtime port in memory, for unit tests and hollow nodes.

A FakeEngine plays the shared Docker engine (several fake nodes can share one, as
real agents share a real engine in tests); a FakeRuntime is one node's view of it,
filtered by the `pinnace.node` label exactly like DockerRuntime. Everything is
plain dicts and counters, no threads, so a thousand hollow nodes cost little.
Tests drive failures through the engine: `crash()` a container, list images that
are `present` or `pullable`, make starting an image fail, or set how a command
run by `exec` ends (`exec_results`). An interactive exec (`open_exec`) prints that
result's output, then, with stdin, echoes its input back (like `cat`) until stdin ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from agent.runtime.port import (
    LABEL_CONTAINER,
    LABEL_NODE,
    STDOUT,
    BeforeRemove,
    ContainerConfig,
    ContainerCreateError,
    ContainerInfo,
    ContainerStats,
    ExecResult,
    ExecSession,
    ImagePullError,
    LogOptions,
    Ran,
    RuntimeEvent,
    RuntimeFailure,
    VolumeInfo,
    fallback_note,
    pod_of,
    restarted_name,
)
from agent.runtime.sandbox import STANDBY_WAIT


@dataclass
class _Subscriber:
    node: str
    queue: asyncio.Queue[RuntimeEvent] = field(default_factory=asyncio.Queue)


class FakeEngine:
    """The in-memory engine several FakeRuntimes (nodes) may share."""

    def __init__(self, clock: Callable[[], float] = time.time, die_details: bool = False) -> None:
        self.clock = clock
        # Whether a die event says what Docker's says (the exit code, the name) and an oom
        # event comes before the die of a container killed for its memory: the agent then
        # decides an immediate restart from the event alone (agent/death_events.py). Off,
        # the events name only the container, and the agent inspects it.
        self.die_details = die_details
        self.containers: dict[str, ContainerInfo] = {}
        # What stats() answers per container id (tests set it); absent: all zero.
        self.stats: dict[str, ContainerStats] = {}
        self.present_images: set[str] = set()
        # An image's Config.User (absent: "", root).
        self.image_users: dict[str, str] = {}
        self.pullable_images: set[str] = set()
        # image -> error message raised by create_and_start.
        self.start_failures: dict[str, str] = {}
        self.pulls: list[str] = []
        # command -> how running it in any container ends (default: exit 0, no output).
        self.exec_results: dict[tuple[str, ...], ExecResult] = {}
        self.execs: list[tuple[str, tuple[str, ...]]] = []
        # container id -> what it has written (tests append with `write_log`).
        self.output: dict[str, list[bytes]] = {}
        # Docker volumes by name, and which volumes each container mounts.
        self.volumes: dict[str, VolumeInfo] = {}
        self.mounted: dict[str, set[str]] = {}
        # What `volume_sizes` answers for a volume (tests set it; absent: 0 bytes).
        self.volume_bytes: dict[str, int] = {}
        # The ports each container was created with (the engine publishes them again when
        # a container is started again), and where in its output its current run began.
        self.bindings: dict[str, dict[str, int]] = {}
        self.run_began: dict[str, int] = {}
        # Ids a restart_in_place refuses to start, with the engine's message.
        self.restart_failures: dict[str, str] = {}
        self.restarts_in_place: list[str] = []
        # Pod -> the standby holder the runtime knows for it (tests set it: no holder is
        # made here), what standby_of answers for a container of its own network.
        self.standbys: dict[str, str] = {}
        # Pod -> set once the standby holder being made for it started (or failed): what
        # standby_soon waits for (tests set both).
        self.standbys_making: dict[str, asyncio.Event] = {}
        self._ids = itertools.count(1)
        self._ports = itertools.count(32768)
        self._subscribers: list[_Subscriber] = []

    def watched(self, node: str) -> bool:
        """Whether a runtime of `node` follows the events (so a crash is seen as one)."""
        return any(sub.node == node for sub in self._subscribers)

    def write_log(self, container_id: str, data: bytes) -> None:
        self.output.setdefault(container_id, []).append(data)

    def crash(self, container_id: str, exit_code: int = 1, oom_killed: bool = False) -> None:
        """The container's process exits on its own, as a crash would."""
        self._exit(container_id, exit_code, oom_killed)

    def start_by_hand(self, container_id: str) -> None:
        """Someone other than the agent starts the stopped container (`docker start`)."""
        info = self.containers[container_id]
        self.containers[container_id] = replace(
            info, state="running", started_at=self.clock(), ports=dict(self.bindings[container_id])
        )
        self._publish("start", self.containers[container_id])

    def _exit(self, container_id: str, exit_code: int, oom_killed: bool = False) -> None:
        info = self.containers.get(container_id)
        if info is None or not info.alive:
            return
        self.containers[container_id] = replace(
            info,
            state="exited",
            exit_code=exit_code,
            oom_killed=oom_killed,
            finished_at=self.clock(),
            ports={},
        )
        if oom_killed and self.die_details:
            self._publish("oom", self.containers[container_id])
        self._publish("die", self.containers[container_id])

    def _publish(self, action: Literal["start", "die", "oom"], info: ContainerInfo) -> None:
        event = RuntimeEvent(action, info.id, pod_of(info.labels))
        event = replace(event, container=info.labels.get(LABEL_CONTAINER, ""), at=self.clock())
        if action == "die" and self.die_details:
            event = replace(event, exit_code=info.exit_code, name=info.name)
        for sub in self._subscribers:
            if info.labels.get(LABEL_NODE) == sub.node:
                sub.queue.put_nowait(event)

    def _host_ports_in_use(self) -> set[tuple[str, int]]:
        return {(k, p) for c in self.containers.values() if c.alive for k, p in c.ports.items()}


class FakeExecSession:
    """An exec in a fake container: the command's set output, then stdin echoed back."""

    def __init__(self, result: ExecResult, stdin: bool) -> None:
        self._result = result
        self._pending: asyncio.Queue[bytes | None] = asyncio.Queue()
        if result.output:
            self._pending.put_nowait(result.output.encode())
        if not stdin:
            self._pending.put_nowait(None)
        self.resizes: list[tuple[int, int]] = []
        self.closed = False

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        while (data := await self._pending.get()) is not None:
            yield STDOUT, data

    async def write(self, data: bytes) -> None:
        self._pending.put_nowait(data)

    async def close_stdin(self) -> None:
        self._pending.put_nowait(None)

    async def resize(self, width: int, height: int) -> None:
        self.resizes.append((width, height))

    async def exit_code(self) -> int:
        return self._result.exit_code

    async def close(self) -> None:
        self.closed = True
        self._pending.put_nowait(None)


class FakeRuntime:
    """One node's view of a FakeEngine; implements the Runtime port."""

    def __init__(self, node: str, engine: FakeEngine | None = None) -> None:
        self._node = node
        self.engine = engine if engine is not None else FakeEngine()

    @property
    def node(self) -> str:
        return self._node

    def _mine(self, info: ContainerInfo | None) -> ContainerInfo | None:
        if info is None or info.labels.get(LABEL_NODE) != self._node:
            return None
        return info

    async def list_containers(self) -> list[ContainerInfo]:
        return [c for c in self.engine.containers.values() if self._mine(c)]

    async def ensure_image(self, image: str, pull_policy: str = "IfNotPresent") -> str:
        engine = self.engine
        present = image in engine.present_images
        if present and pull_policy != "Always":
            return ""
        if pull_policy == "Never":
            raise ImagePullError(f"image {image} is not present and imagePullPolicy is Never")
        engine.pulls.append(image)
        if image not in engine.pullable_images:
            why = f"pull access denied for {image}: repository does not exist"
            if present:
                return fallback_note(image, why)
            raise ImagePullError(why)
        engine.present_images.add(image)
        return ""

    async def image_user(self, image: str) -> str:
        if image not in self.engine.present_images:
            raise RuntimeFailure(f"no such image: {image}")
        return self.engine.image_users.get(image, "")

    async def create_and_start(
        self, config: ContainerConfig, image_ready: Awaitable[object] | None = None
    ) -> ContainerInfo:
        if image_ready is not None:
            # No create to overlap in memory: the image step's outcome comes first, as the
            # port asks (its error raised, nothing made).
            await image_ready
        engine = self.engine
        for existing in list(engine.containers.values()):
            if existing.name == config.name:
                if existing.labels.get(LABEL_NODE) != self._node:
                    raise ContainerCreateError(
                        f"container name {config.name} is taken by another node's container"
                    )
                del engine.containers[existing.id]
        if config.image not in engine.present_images:
            raise ContainerCreateError(f"no such image: {config.image}")
        if config.image in engine.start_failures:
            raise ContainerCreateError(engine.start_failures[config.image])
        in_use = {port for _, port in engine._host_ports_in_use()}
        ports: dict[str, int] = {}
        for binding in config.ports:
            host_port = binding.host_port or next(engine._ports)
            if host_port in in_use:
                raise ContainerCreateError(
                    f"port {config.host_ip}:{host_port} is already allocated"
                )
            in_use.add(host_port)
            ports[binding.key] = host_port
        info = ContainerInfo(
            id=f"fake{next(engine._ids):060d}",
            name=config.name,
            image=config.image,
            state="running",
            labels=dict(config.labels),
            started_at=engine.clock(),
            ports=ports,
        )
        for mount in config.mounts:
            if mount.type == "volume" and mount.source not in engine.volumes:
                engine.volumes[mount.source] = VolumeInfo(mount.source, dict(mount.labels))
        engine.mounted[info.id] = {m.source for m in config.mounts if m.type == "volume"}
        engine.containers[info.id] = info
        engine.bindings[info.id] = dict(ports)
        engine._publish("start", info)
        return info

    async def restart_in_place(self, container_id: str, name: str) -> ContainerInfo:
        engine = self.engine
        old = self._mine(engine.containers.get(container_id))
        if old is None or old.state != "exited":
            raise ContainerCreateError(f"cannot start container {name} again: not exited")
        # As the engine's: started first, then renamed (a failed start keeps the old name).
        renamed = replace(old, name=restarted_name(name, engine.clock()))
        if container_id in engine.restart_failures:
            raise ContainerCreateError(engine.restart_failures[container_id])
        ports = engine.bindings.get(container_id, {})
        if set(ports.values()) & {port for _, port in engine._host_ports_in_use()}:
            raise ContainerCreateError(f"cannot start container {name} again: port allocated")
        # A later run starts later, even on a test's stopped clock (runs are told apart by
        # their start: ContainerInfo.run_key).
        began = max(engine.clock(), old.started_at + 1e-6)
        info = replace(renamed, state="running", started_at=began, ports=dict(ports))
        engine.containers[container_id] = info
        engine.run_began[container_id] = len(engine.output.get(container_id, []))
        engine.restarts_in_place.append(container_id)
        engine._publish("start", info)
        return info

    async def list_volumes(self) -> list[VolumeInfo]:
        return [v for v in self.engine.volumes.values() if v.labels.get(LABEL_NODE) == self._node]

    async def volume_sizes(self) -> dict[str, int]:
        return {v.name: self.engine.volume_bytes.get(v.name, 0) for v in await self.list_volumes()}

    async def remove_volume(self, name: str) -> bool:
        engine = self.engine
        if any(name in engine.mounted.get(cid, ()) for cid in engine.containers):
            return False
        engine.volumes.pop(name, None)
        return True

    async def stop(self, container_id: str, grace_seconds: float) -> None:
        if self._mine(self.engine.containers.get(container_id)):
            # A process that honours SIGTERM exits 128+15.
            self.engine._exit(container_id, 143)

    async def remove(self, container_id: str) -> None:
        if self._mine(self.engine.containers.get(container_id)):
            self.engine._exit(container_id, 137)
            del self.engine.containers[container_id]
            self.engine.mounted.pop(container_id, None)

    async def replace(
        self,
        old_id: str,
        config: ContainerConfig,
        before_remove: BeforeRemove | None = None,
        ran: Ran | None = None,
    ) -> ContainerInfo:
        old = self._mine(self.engine.containers.get(old_id))
        if old is not None:
            # Moved out of the way, as the engine's rename does: the new one takes the name.
            self.engine.containers[old_id] = replace(old, name=f"{old.name}-replaced-{old_id[:12]}")
        try:
            info = await self.create_and_start(config)
            if ran is not None:
                ran(info)
            return info
        finally:
            work = before_remove() if before_remove is not None else None
            if work is not None:
                with contextlib.suppress(Exception):
                    await work
            await self.remove(old_id)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        return self._mine(self.engine.containers.get(container_id))

    def standby_of(self, container: ContainerInfo) -> str:
        return "" if container.sandbox_id else self.engine.standbys.get(container.pod, "")

    async def standby_soon(self, container: ContainerInfo) -> str:
        making = self.engine.standbys_making.get(container.pod)
        if making is not None and not self.standby_of(container) and not container.sandbox_id:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(making.wait(), STANDBY_WAIT)
        return self.standby_of(container)

    async def exec(self, container_id: str, command: tuple[str, ...]) -> ExecResult:
        info = self._mine(self.engine.containers.get(container_id))
        if info is None or info.state != "running":
            raise RuntimeFailure(f"cannot exec in {container_id[:12]}: container is not running")
        self.engine.execs.append((container_id, command))
        return self.engine.exec_results.get(command, ExecResult(0))

    async def open_exec(
        self, container_id: str, command: tuple[str, ...], stdin: bool, tty: bool
    ) -> ExecSession:
        info = self._mine(self.engine.containers.get(container_id))
        if info is None or info.state != "running":
            raise RuntimeFailure(f"cannot exec in {container_id[:12]}: container is not running")
        self.engine.execs.append((container_id, command))
        return FakeExecSession(self.engine.exec_results.get(command, ExecResult(0)), stdin)

    async def open_attach(self, container_id: str, stdin: bool, tty: bool) -> ExecSession:
        info = self._mine(self.engine.containers.get(container_id))
        if info is None or info.state != "running":
            raise RuntimeFailure(f"cannot attach to {container_id[:12]}: container is not running")
        self.engine.execs.append((container_id, ("<attach>",)))
        return FakeExecSession(ExecResult(0), stdin)

    async def stats(self, container_id: str) -> ContainerStats | None:
        info = self._mine(self.engine.containers.get(container_id))
        if info is None or info.state != "running":
            return None
        return self.engine.stats.get(container_id, ContainerStats(0, 0))

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        sub = _Subscriber(self._node)
        self.engine._subscribers.append(sub)
        try:
            while True:
                yield await sub.queue.get()
        finally:
            self.engine._subscribers.remove(sub)

    async def logs(self, container_id: str, options: LogOptions) -> AsyncIterator[bytes]:
        if self._mine(self.engine.containers.get(container_id)) is None:
            raise RuntimeFailure(f"container {container_id[:12]} is gone")
        # As the engine's log window (docker_runtime.log_window): a container started again
        # in place shows its current run, or with `until` the run before.
        written = self.engine.output.get(container_id, [])
        began = self.engine.run_began.get(container_id, 0)
        written = written[:began] if options.until > 0 else written[began:]
        lines = b"".join(written).splitlines(keepends=True)
        if options.tail_lines >= 0:
            lines = lines[len(lines) - options.tail_lines :] if options.tail_lines else []
        for line in lines:
            yield line

    async def close(self) -> None:
        return None
