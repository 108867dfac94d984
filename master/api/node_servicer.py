"""The node API servicer: agent registration and the long-lived session stream.

One stream per agent. Up: heartbeats (renew the in-memory lease, no store
write) and pod status changes (applied to the pod if the report answers the
pod's current assignment epoch; flushed to disk in batches by ClusterState).
Down: the node's complete assignment set, re-sent whenever any pod bound to the
node changes (a state listener marks the node's session dirty), and when a stop
order the drain gate held back may go (checked every second: the gate can open
by timeout alone). A newer session for the same node supersedes the older one,
whose stream then ends. Reports with reason Fenced (pods an agent stopped on
losing its lease) become Fenced events, once per node, pod and epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

import grpc

from master.api.convert import assignments_to_proto, node_from_proto, pod_status_from_proto
from master.clock import Clock
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Node, Pod, PodPhase, PodStatus, StoredObject
from master.state import ClusterState
from protos import node_pb2, node_pb2_grpc

log = logging.getLogger(__name__)

_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
MAX_PODS_PER_REPORT = 1000
# How often stop orders held back by the drain gate are checked again.
STOP_GATE_RECHECK = 1.0
# The pod reason an agent reports for a pod it stopped by fencing itself.
FENCED = "Fenced"
# Fenced events already recorded (node, pod, epoch), so re-sent reports add none.
MAX_FENCED_REMEMBERED = 10_000


@dataclass(slots=True)
class _Session:
    session_id: str
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    superseded: asyncio.Event = field(default_factory=asyncio.Event)


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    def __init__(
        self,
        state: ClusterState,
        leases: LeaseTable,
        manager: ControllerManager,
        clock: Clock,
        heartbeat_interval: float,
        lease_seconds: float,
    ) -> None:
        self._state = state
        self._leases = leases
        self._manager = manager
        self._clock = clock
        self._heartbeat_interval = heartbeat_interval
        self._lease_seconds = lease_seconds
        self._sessions: dict[str, _Session] = {}
        self._fenced_seen: dict[tuple[str, str, int], None] = {}
        # Whether a stopping pod may be told to stop (the LB has drained it).
        self._released: Callable[[Pod], bool] = lambda pod: True
        state.subscribe(self._on_change)

    def gate_stops(self, released: Callable[[Pod], bool]) -> None:
        self._released = released

    def refresh(self, nodes: set[str]) -> None:
        """Re-send these nodes' assignment sets (e.g. after the LB released pods)."""
        for name in nodes:
            session = self._sessions.get(name)
            if session is not None:
                session.dirty.set()

    def _on_change(self, kind: str, obj: StoredObject, deleted: bool) -> None:
        if isinstance(obj, Pod) and obj.node_name:
            session = self._sessions.get(obj.node_name)
            if session is not None:
                session.dirty.set()

    # -- RegisterNode ----------------------------------------------------------------

    async def RegisterNode(
        self, request: node_pb2.RegisterNodeRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.RegisterNodeResponse:
        info = request.node
        if len(info.name) > 253 or not _NODE_NAME.match(info.name):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node name {info.name[:80]!r} is not a valid DNS-1123 subdomain",
            )
        if not info.address or len(info.address) > 64:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "node address (--advertise-address) is required"
            )
        existing = self._state.get("Node", info.name)
        node = node_from_proto(
            info, existing if isinstance(existing, Node) else None, self._clock.now()
        )
        self._state.put(node)
        if existing is None:
            self._state.record_event("Node", info.name, "Registered", f"node {info.name} joined")
        self._leases.renew(info.name, self._clock.monotonic())
        for report in request.pods[:MAX_PODS_PER_REPORT]:
            self._apply_report(info.name, report, adopted=True)
        old = self._sessions.get(info.name)
        session = _Session(session_id=uuid.uuid4().hex)
        self._sessions[info.name] = session
        if old is not None:
            old.superseded.set()
        self._manager.poke()
        await self._state.flush()
        return node_pb2.RegisterNodeResponse(
            session_id=session.session_id,
            heartbeat_interval_seconds=self._heartbeat_interval,
            lease_seconds=self._lease_seconds,
        )

    # -- StreamSession ---------------------------------------------------------------

    async def StreamSession(
        self,
        request_iterator: AsyncIterator[node_pb2.AgentMessage],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[node_pb2.MasterMessage]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("body") != "hello":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "a session starts with hello")
            return
        node_name = first.hello.node_name
        session = self._sessions.get(node_name)
        if session is None or session.session_id != first.hello.session_id:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no current registration for node {node_name!r}; register again",
            )
            return
        self._mark_session(node_name, lost=False)
        # Heartbeat acks from the reader and assignment sets share one way down.
        acks: asyncio.Queue[node_pb2.MasterMessage] = asyncio.Queue()
        session.dirty.set()
        reader = asyncio.create_task(self._read(node_name, request_iterator, acks))
        superseded = asyncio.create_task(session.superseded.wait())
        # Stop orders held back by the gate (the LB still draining them): re-checked
        # every second, since the gate may open by timeout without any state change.
        withheld: set[str] = set()
        try:
            while not reader.done() and not superseded.done():
                dirty = asyncio.create_task(session.dirty.wait())
                ack = asyncio.create_task(acks.get())
                await asyncio.wait(
                    {reader, superseded, dirty, ack},
                    timeout=STOP_GATE_RECHECK if withheld else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                dirty.cancel()
                if ack.done():
                    yield ack.result()
                else:
                    ack.cancel()
                if withheld and any(
                    (p := self._state.pod(name)) is None or self._released(p) for name in withheld
                ):
                    session.dirty.set()
                if session.dirty.is_set() and not reader.done():
                    session.dirty.clear()
                    pods = self._state.pods_on_node(node_name)
                    msg = assignments_to_proto(self._state.resource_version, pods, self._released)
                    withheld = {
                        p.meta.name
                        for p in pods
                        if p.deletion_requested_at and not self._released(p)
                    }
                    yield node_pb2.MasterMessage(assignments=msg)
        finally:
            for task in (reader, superseded):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            # A broken stream is a suspicion, not a verdict: the lease decides.
            log.info("session of node %s ended", node_name)
            if self._sessions.get(node_name) is session and not superseded.done():
                self._mark_session(node_name, lost=True)

    def _mark_session(self, node_name: str, lost: bool) -> None:
        node = self._state.get("Node", node_name)
        if not isinstance(node, Node) or bool(node.status.session_lost_at) == lost:
            return
        since = self._clock.now() if lost else 0.0
        self._state.put(replace(node, status=replace(node.status, session_lost_at=since)))
        if lost:
            self._state.record_event(
                "Node",
                node_name,
                "NodeSessionLost",
                f"the agent's session ended; no new pods on {node_name} until it is back "
                f"(NotReady after {self._lease_seconds:g}s of silence)",
                "Warning",
            )

    async def _read(
        self,
        node_name: str,
        request_iterator: AsyncIterator[node_pb2.AgentMessage],
        acks: asyncio.Queue[node_pb2.MasterMessage],
    ) -> None:
        async for msg in request_iterator:
            body = msg.WhichOneof("body")
            if body == "heartbeat":
                self._leases.renew(node_name, self._clock.monotonic())
                node = self._state.get("Node", node_name)
                if isinstance(node, Node) and not node.status.ready:
                    self._manager.poke()
                acks.put_nowait(
                    node_pb2.MasterMessage(
                        heartbeat_ack=node_pb2.HeartbeatAck(sequence=msg.heartbeat.sequence)
                    )
                )
            elif body == "statuses":
                for report in msg.statuses.pods[:MAX_PODS_PER_REPORT]:
                    self._apply_report(node_name, report, adopted=False)

    # -- pod status --------------------------------------------------------------------

    def _apply_report(
        self, node_name: str, report: node_pb2.PodStatusReport, adopted: bool
    ) -> None:
        pod = self._state.pod(report.pod_name)
        if report.reason == FENCED:
            # Said even when the pod was replaced meanwhile: it explains the stop.
            self._record_fenced(node_name, report)
        # Reports about pods this node does not hold (anymore) are ignored: the
        # assignment set the agent gets next tells it to remove them.
        if pod is None or pod.node_name != node_name or report.epoch != pod.epoch:
            return
        if report.removed:
            if pod.deletion_requested_at:
                self._state.remove("Pod", pod.meta.name)
                self._state.record_event(
                    "Pod", pod.meta.name, "Stopped", f"pod {pod.meta.name} stopped on {node_name}"
                )
            elif report.reason == FENCED and pod.status.reason != FENCED:
                status = replace(
                    pod.status, ready=False, reason=FENCED, message=report.message[:1024]
                )
                self._state.put(replace(pod, status=status))
            return
        if adopted and report.phase == PodPhase.RUNNING.value:
            self._state.record_event(
                "Pod",
                pod.meta.name,
                "Adopted",
                f"agent on {node_name} kept running {pod.meta.name}",
            )
        status = pod_status_from_proto(report)
        if status == pod.status:
            return
        self._record_transitions(pod, status)
        self._state.put(replace(pod, status=status))

    def _record_fenced(self, node_name: str, report: node_pb2.PodStatusReport) -> None:
        key = (node_name, report.pod_name[:253], report.epoch)
        if not key[1] or key in self._fenced_seen:
            return
        self._fenced_seen[key] = None
        if len(self._fenced_seen) > MAX_FENCED_REMEMBERED:
            del self._fenced_seen[next(iter(self._fenced_seen))]
        self._state.record_event(
            "Pod",
            key[1],
            FENCED,
            f"node {node_name} stopped its copy of {key[1]}: {report.message[:512]}",
            "Warning",
            source=node_name,
        )

    def _record_transitions(self, pod: Pod, new: PodStatus) -> None:
        name = pod.meta.name
        if new.phase == PodPhase.RUNNING and pod.status.phase != PodPhase.RUNNING:
            self._state.record_event("Pod", name, "Started", f"pod {name} is running")
        old_restarts = {c.name: c.restart_count for c in pod.status.container_statuses}
        for c in new.container_statuses:
            if c.restart_count > old_restarts.get(c.name, 0):
                self._state.record_event(
                    "Pod",
                    name,
                    "Restarted",
                    f"container {c.name} restarted (restart {c.restart_count})",
                    "Warning",
                )
            old_note = next(
                (o.image_note for o in pod.status.container_statuses if o.name == c.name), ""
            )
            if c.image_note and c.image_note != old_note:
                self._state.record_event(
                    "Pod", name, "PullFallback", f"container {c.name}: {c.image_note}", "Warning"
                )
            if c.reason in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"):
                old = next((o for o in pod.status.container_statuses if o.name == c.name), None)
                if old is None or old.reason != c.reason:
                    self._state.record_event(
                        "Pod",
                        name,
                        "BackOff",
                        f"container {c.name}: {c.reason}: {c.message}",
                        "Warning",
                    )
