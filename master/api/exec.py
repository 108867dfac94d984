"""Commands in a pod's container through the master: `kubectl exec` and `pinnace exec`.

Neither client reaches the node. The master sends an `ExecStart` (with a fresh
id) down the pod's node session, and the agent (agent/exec.py) answers with
`ExecOutput`s carrying that id, the last with `end` and the exit code. `ExecRelay`
pairs them, as LogRelay does for logs (it shares LogRelay's sessions: see
master/api/logs.py); an API edge opens an `ExecChannel`, reads its events, and
passes stdin, stdin's end and resizes down. When the client goes away the agent
is told to cancel; when the node's session ends, every exec on it ends with an
error sentence. A channel buffers at most MAX_BUFFERED outputs: a client that
cannot keep up is cut off rather than growing the master's memory.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from master.model import DEFAULT_NAMESPACE
from master.state import ClusterState
from protos import node_pb2

MAX_BUFFERED = 1024
# Stdin messages sent to the agent and not yet written to the command: past this many,
# the edge stops reading from its client (its TCP window fills), so a large upload
# (`kubectl cp`) is paced by the command instead of buffered in the master or agent.
INPUT_WINDOW = 32
STDOUT, STDERR = 1, 2


class ExecRefused(Exception):
    """The exec cannot be started (`code`: not_found | bad_request); one sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def locate_exec(
    state: ClusterState, pod_name: str, container: str, namespace: str = DEFAULT_NAMESPACE
) -> tuple[str, str]:
    """(node, container) to run a command in; the rules both API edges follow."""
    pod = state.pod(pod_name, namespace)
    if pod is None:
        raise ExecRefused("not_found", f'pods "{pod_name[:253]}" not found')
    names = [c.name for c in pod.spec.containers]
    if container and container not in names:
        raise ExecRefused(
            "bad_request", f"container {container[:63]} is not valid for pod {pod_name}"
        )
    chosen = container or names[0]
    if not pod.node_name:
        raise ExecRefused(
            "bad_request",
            f'unable to upgrade connection: pod "{pod_name}" is not scheduled to a node yet',
        )
    phase = pod.status.phase
    if phase in ("Succeeded", "Failed"):
        raise ExecRefused(
            "bad_request",
            f"cannot exec into a container in a completed pod; current phase is {phase}",
        )
    return pod.node_name, chosen


@dataclass(frozen=True, slots=True)
class Output:
    stream: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Exited:
    """The end: the command's exit code, or `error` when it did not run or was cut off."""

    code: int
    error: str = ""


class ExecChannel:
    """One running exec as an API edge sees it."""

    def __init__(self, relay: ExecRelay, node: str, request_id: str) -> None:
        self._relay = relay
        self.node = node
        self.request_id = request_id
        self.events: asyncio.Queue[Output | Exited] = asyncio.Queue()
        self.ended = False
        self._sent = 0
        self._done = 0
        self._room = asyncio.Event()
        self._room.set()

    async def next(self) -> Output | Exited:
        event = await self.events.get()
        if isinstance(event, Exited):
            self.ended = True
            self._room.set()
        return event

    async def stdin(self, data: bytes) -> None:
        """Send stdin once fewer than INPUT_WINDOW earlier pieces are still unwritten."""
        if not data:
            return
        while not self.ended and self._sent - self._done >= INPUT_WINDOW:
            self._room.clear()
            await self._room.wait()
        self._sent += 1
        self._send(node_pb2.ExecInput(data=data))

    def written(self, count: int) -> None:
        """The agent has written `count` stdin pieces to the command in all."""
        self._done = max(self._done, count)
        self._room.set()

    def close_stdin(self) -> None:
        self._send(node_pb2.ExecInput(close_stdin=True))

    def passed_on(self, count: int) -> None:
        """The edge has handed `count` outputs in all to its client (a port-forward's agent
        reads no further ahead of this than its window)."""
        self._send(node_pb2.ExecInput(output_done=count))

    def resize(self, width: int, height: int) -> None:
        if width > 0 and height > 0:
            self._send(node_pb2.ExecInput(width=width, height=height))

    def client_gone(self) -> None:
        """The client's connection closed: whoever waits for the next event stops."""
        self.events.put_nowait(Exited(-1, "the client went away"))
        self._room.set()

    def close(self) -> None:
        """The client is done: tell the agent to stop unless the command already ended."""
        if not self.ended:
            self._send(node_pb2.ExecInput(cancel=True))
        self._relay.forget(self.request_id)

    def _send(self, message: node_pb2.ExecInput) -> None:
        if self.ended:
            return
        message.request_id = self.request_id
        self._relay.send(self.node, node_pb2.MasterMessage(exec_input=message))


class ExecUnavailable(Exception):
    """The node cannot be asked; one sentence for the user."""


class ExecRelay:
    def __init__(self) -> None:
        self._sessions: dict[str, asyncio.Queue[node_pb2.MasterMessage]] = {}
        self._pending: dict[str, ExecChannel] = {}

    def attach(self, node: str, down: asyncio.Queue[node_pb2.MasterMessage]) -> None:
        self._sessions[node] = down

    def detach(self, node: str, down: asyncio.Queue[node_pb2.MasterMessage]) -> None:
        if self._sessions.get(node) is not down:
            return
        del self._sessions[node]
        for channel in list(self._pending.values()):
            if channel.node == node:
                channel.events.put_nowait(Exited(-1, f"the session of node {node} ended"))

    def deliver(self, message: node_pb2.ExecOutput) -> None:
        channel = self._pending.get(message.request_id)
        if channel is None:
            return
        if message.input_done:
            channel.written(message.input_done)
            if not message.data and not message.end:
                return
        channel.events.put_nowait(incoming(message, channel.events.qsize()))

    def send(self, node: str, message: node_pb2.MasterMessage) -> None:
        down = self._sessions.get(node)
        if down is not None:
            down.put_nowait(message)

    def forget(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    def open(
        self,
        node: str,
        pod: str,
        container: str,
        command: list[str],
        stdin: bool,
        tty: bool,
        width: int = 0,
        height: int = 0,
        namespace: str = DEFAULT_NAMESPACE,
        port: int = 0,
        attach: bool = False,
    ) -> ExecChannel:
        """Start a command (or, with `port`, a TCP connection to the pod's port; with
        `attach`, the container's main process) on the pod's node."""
        if node not in self._sessions:
            raise ExecUnavailable(
                f"node {node} has no live session with the master; its pods cannot run "
                f"commands until its agent reconnects"
            )
        channel = ExecChannel(self, node, uuid.uuid4().hex)
        self._pending[channel.request_id] = channel
        start = node_pb2.ExecStart(
            request_id=channel.request_id, pod_name=pod, container=container, command=command,
            stdin=stdin, tty=tty, width=width, height=height, namespace=namespace, port=port,
            attach=attach,
        )  # fmt: skip
        self.send(node, node_pb2.MasterMessage(exec_start=start))
        return channel


def incoming(message: node_pb2.ExecOutput, buffered: int) -> Output | Exited:
    """What an agent's ExecOutput means for a channel holding `buffered` events."""
    if message.end:
        return Exited(message.exit_code, message.error)
    if buffered >= MAX_BUFFERED:
        return Exited(-1, "the exec's reader could not keep up; cut off")
    return Output(STDERR if message.stream == STDERR else STDOUT, message.data)
