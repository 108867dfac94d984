"""Container logs through the master: a request down a node's session, chunks back up.

`kubectl logs` and `pinnace logs` reach the master, not the node: the master asks
the pod's agent over its existing mTLS session (a `LogRequest` with a fresh id)
and the agent answers with `LogChunk`s carrying that id. `LogRelay` pairs them:
the node servicer attaches each live session's way down and hands every
LogChunk it reads to `deliver`; an API handler iterates `stream(...)`. When
the reader goes away early (a closed `-f`), a `LogCancel` stops the agent;
when the session ends, every stream of that node ends with an error sentence.
Each stream buffers at most MAX_BUFFERED chunks: a reader that cannot keep up
is cut off rather than growing the master's memory. The relay of commands run in
containers (master/api/exec.py) rides on the same sessions: `execs` is attached and
detached with them, so every edge that can read logs can also exec.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from master.api.exec import ExecRelay
from master.model import DEFAULT_NAMESPACE
from master.state import ClusterState
from protos import node_pb2

MAX_BUFFERED = 1024


class LogUnavailable(Exception):
    """The log cannot be read; the message is one sentence for the user."""


class LogRefused(Exception):
    """The request itself cannot be served (`code`: not_found | bad_request)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def locate(
    state: ClusterState, pod_name: str, container: str, namespace: str = DEFAULT_NAMESPACE
) -> tuple[str, str]:
    """(node, container) to ask for a pod's log; the rules both API edges follow."""
    pod = state.pod(pod_name, namespace)
    if pod is None:
        raise LogRefused("not_found", f'pods "{pod_name[:253]}" not found')
    names = [c.name for c in pod.spec.containers]
    if container and container not in names:
        raise LogRefused(
            "bad_request", f"container {container[:63]} is not valid for pod {pod_name}"
        )
    chosen = container or names[0]
    if not pod.node_name:
        raise LogRefused(
            "bad_request",
            f'container "{chosen}" in pod "{pod_name}" is waiting to start: the pod is not '
            f"scheduled to a node yet",
        )
    return pod.node_name, chosen


@dataclass(frozen=True, slots=True)
class LogQuery:
    pod: str
    container: str = ""
    follow: bool = False
    tail_lines: int = -1
    timestamps: bool = False
    since_seconds: int = 0
    limit_bytes: int = 0
    # The container's previous run (what its agent kept when it restarted it).
    previous: bool = False
    namespace: str = DEFAULT_NAMESPACE


_END = node_pb2.LogChunk(end=True)


class LogRelay:
    def __init__(self) -> None:
        self._sessions: dict[str, asyncio.Queue[node_pb2.MasterMessage]] = {}
        # request id -> (node, chunks)
        self._pending: dict[str, tuple[str, asyncio.Queue[node_pb2.LogChunk]]] = {}
        self.execs = ExecRelay()

    def attach(self, node: str, down: asyncio.Queue[node_pb2.MasterMessage]) -> None:
        self._sessions[node] = down
        self.execs.attach(node, down)

    def detach(self, node: str, down: asyncio.Queue[node_pb2.MasterMessage]) -> None:
        self.execs.detach(node, down)
        if self._sessions.get(node) is not down:
            return
        del self._sessions[node]
        for request_id, (owner, chunks) in list(self._pending.items()):
            if owner == node:
                chunks.put_nowait(
                    node_pb2.LogChunk(
                        request_id=request_id,
                        end=True,
                        error=f"the session of node {node} ended",
                    )
                )

    def deliver(self, chunk: node_pb2.LogChunk) -> None:
        entry = self._pending.get(chunk.request_id)
        if entry is None:
            return
        chunks = entry[1]
        if chunks.qsize() >= MAX_BUFFERED and not chunk.end:
            chunks.put_nowait(
                node_pb2.LogChunk(end=True, error="the log reader could not keep up; cut off")
            )
            return
        chunks.put_nowait(chunk)

    async def stream(self, node: str, query: LogQuery) -> AsyncGenerator[bytes, None]:
        """The log's bytes as the agent sends them; LogUnavailable when it cannot be read."""
        down = self._sessions.get(node)
        if down is None:
            raise LogUnavailable(
                f"node {node} has no live session with the master; its pods' logs are "
                f"unreachable until its agent reconnects"
            )
        request_id = uuid.uuid4().hex
        chunks: asyncio.Queue[node_pb2.LogChunk] = asyncio.Queue()
        self._pending[request_id] = (node, chunks)
        ended = False
        try:
            down.put_nowait(
                node_pb2.MasterMessage(
                    log_request=node_pb2.LogRequest(
                        request_id=request_id,
                        pod_name=query.pod,
                        namespace=query.namespace,
                        container=query.container,
                        follow=query.follow,
                        tail_lines=query.tail_lines,
                        timestamps=query.timestamps,
                        since_seconds=query.since_seconds,
                        limit_bytes=query.limit_bytes,
                        previous=query.previous,
                    )
                )
            )
            first = True
            while True:
                chunk = await chunks.get()
                if chunk.end:
                    ended = True
                    if chunk.error:
                        if first:
                            raise LogUnavailable(chunk.error)
                        return  # the bytes already sent stand; the reader sees the end
                    return
                first = False
                if chunk.data:
                    yield chunk.data
        finally:
            self._pending.pop(request_id, None)
            if not ended and self._sessions.get(node) is down:
                down.put_nowait(
                    node_pb2.MasterMessage(log_cancel=node_pb2.LogCancel(request_id=request_id))
                )
