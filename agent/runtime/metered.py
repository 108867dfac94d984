"""A Runtime that times every container operation of the one it wraps (agent/metrics.py).

Why a wrapper: the worker and the engine adapters stay free of instrumentation, and every
Runtime (Docker, the fake one of hollow nodes) is measured the same way. Each call is timed
into pinnace_agent_container_operation_duration_seconds{operation}, and one that raises is
counted in pinnace_agent_container_operation_errors_total{operation}; the exception goes on
unchanged. Events and close are passed through untimed (a stream, and the end).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from agent.metrics import CONTAINER_ERRORS, CONTAINER_OPERATION
from agent.runtime.port import (
    BeforeRemove,
    ContainerConfig,
    ContainerInfo,
    ContainerStats,
    ExecResult,
    ExecSession,
    LogOptions,
    Ran,
    Runtime,
    RuntimeEvent,
    VolumeInfo,
)

T = TypeVar("T")


async def _timed(operation: str, call: Awaitable[T]) -> T:
    start = time.perf_counter()
    try:
        return await call
    except Exception:
        CONTAINER_ERRORS.labels(operation).inc()
        raise
    finally:
        CONTAINER_OPERATION.labels(operation).observe(time.perf_counter() - start)


class MeteredRuntime:
    def __init__(self, inner: Runtime) -> None:
        self._inner = inner

    @property
    def node(self) -> str:
        return self._inner.node

    async def list_containers(self) -> list[ContainerInfo]:
        return await _timed("list", self._inner.list_containers())

    async def ensure_image(self, image: str, pull_policy: str = "IfNotPresent") -> str:
        return await _timed("pull", self._inner.ensure_image(image, pull_policy))

    async def image_user(self, image: str) -> str:
        return await self._inner.image_user(image)

    async def create_and_start(
        self, config: ContainerConfig, image_ready: Awaitable[object] | None = None
    ) -> ContainerInfo:
        return await _timed("create", self._inner.create_and_start(config, image_ready))

    async def stop(self, container_id: str, grace_seconds: float) -> None:
        await _timed("stop", self._inner.stop(container_id, grace_seconds))

    async def remove(self, container_id: str) -> None:
        await _timed("remove", self._inner.remove(container_id))

    async def replace(
        self,
        old_id: str,
        config: ContainerConfig,
        before_remove: BeforeRemove | None = None,
        ran: Ran | None = None,
    ) -> ContainerInfo:
        return await _timed("replace", self._inner.replace(old_id, config, before_remove, ran))

    async def restart_in_place(self, container_id: str, name: str) -> ContainerInfo:
        return await _timed("restart_in_place", self._inner.restart_in_place(container_id, name))

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        return await _timed("inspect", self._inner.inspect(container_id))

    def standby_of(self, container: ContainerInfo) -> str:
        return self._inner.standby_of(container)  # memory, not an engine call: untimed

    async def standby_soon(self, container: ContainerInfo) -> str:
        return await self._inner.standby_soon(container)  # a wait, not an engine call

    async def exec(self, container_id: str, command: tuple[str, ...]) -> ExecResult:
        return await _timed("exec", self._inner.exec(container_id, command))

    async def open_exec(
        self, container_id: str, command: tuple[str, ...], stdin: bool, tty: bool
    ) -> ExecSession:
        return await _timed("open_exec", self._inner.open_exec(container_id, command, stdin, tty))

    async def open_attach(self, container_id: str, stdin: bool, tty: bool) -> ExecSession:
        return await _timed("open_attach", self._inner.open_attach(container_id, stdin, tty))

    async def list_volumes(self) -> list[VolumeInfo]:
        return await _timed("list_volumes", self._inner.list_volumes())

    async def remove_volume(self, name: str) -> bool:
        return await _timed("remove_volume", self._inner.remove_volume(name))

    async def volume_sizes(self) -> dict[str, int]:
        return await _timed("volume_sizes", self._inner.volume_sizes())

    async def stats(self, container_id: str) -> ContainerStats | None:
        return await _timed("stats", self._inner.stats(container_id))

    def events(self) -> AsyncIterator[RuntimeEvent]:
        return self._inner.events()

    def logs(self, container_id: str, options: LogOptions) -> AsyncIterator[bytes]:
        # A stream, not an operation with a duration: passed through unmeasured.
        return self._inner.logs(container_id, options)

    async def close(self) -> None:
        await self._inner.close()
