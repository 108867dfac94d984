"""The node API servicer: agent registration and the long-lived session stream.

One stream per agent. Up: heartbeats (renew the in-memory lease, no store
write) and pod status changes (applied to the pod if the report answers the
pod's current assignment epoch; flushed to disk in batches by ClusterState).
Down: the node's assignment set whenever any pod bound to the node changes (a state
listener marks the node's session dirty), and when a stop order the drain gate held
back may go (checked every second: the gate can open by timeout alone): the whole set
to an older agent, to one that takes changes the whole set at first and then what
changed (master/app/assignment_feed.py decides which). A newer session for the same
node supersedes the older one, whose stream then ends. What a pod report means
(epochs, ownership, Fenced events) is decided by master.app.reports; this module only
converts.

After memory is reloaded from the store (ClusterState.on_replaced: a settled write
in doubt, a leader resuming) every agent is asked to resend all its reports, once
the master takes writes again: the reports applied to memory and not yet stored
were dropped with the rest, and an agent says a report again only when it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace

import grpc

from kernel.clock import Clock
from kernel.names import is_node_name
from master.api.configreaders import ConfigReaders
from master.api.convert import (
    assignment_changes_to_proto,
    assignments_to_proto,
    chunk_assignments,
    node_from_proto,
    peer_broadcast_news,
    peer_list_news,
    peers_to_proto,
    pod_report_from_proto,
)
from master.api.logs import LogRelay
from master.api.managedfields import with_entries
from master.api.servicetable import ServiceTableFeed
from master.api.usage import claim_disk_from_proto, report_from_proto, volume_uses_from_proto
from master.app.assignment_feed import (
    AssignmentFeed,
    SendChanges,
    SendWhole,
)
from master.app.claimreports import record_volume_report, removal_orders
from master.app.podcidr import node_pod_cidr
from master.app.podenv import ResolvedEnv, resolve_container_env
from master.app.podvolumes import (
    ResolvedFiles,
    mount_error,
    resolve_volume_files,
)
from master.app.proxyproblems import Reported
from master.app.reports import NodeReports
from master.app.servicenv import service_env
from master.app.usage import UsageTable
from master.controllers.heartbeat_budget import HeartbeatBudget, cluster_plan, planned_rate
from master.controllers.heartbeats import DEFAULT_MAX_HEARTBEATS_PER_SECOND, HeartbeatPlan
from master.controllers.lifecycle import NodeHealthSettings, witness_members
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.controllers.plan_pacing import STEADY_BUDGET_SECONDS, PlanTally, ShrinkPacer
from master.controllers.session_plan import PlanOffer, SessionPlan, ShrinkSettings
from master.controllers.shrink_offers import (
    IDLE_REORDER_SECONDS,
    LATE_SECONDS,
    OFFER_TICK,
    REORDER_SECONDS,
    OfferPace,
    order_shrinks,
    pick_shrinks,
)
from master.metrics.series import HEARTBEATS, PLAN_SHRINKS
from master.model import (
    Container,
    Node,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Service,
    StoredObject,
    Volume,
    key_of,
)
from master.pki.admission import (
    DEFAULT_REGISTRATIONS_IN_FLIGHT,
    RETRY_AFTER_METADATA,
    Busy,
    JoinAdmission,
)
from master.state import ClusterState
from master.store.port import NotLeaderError
from master.writers import KUBELET
from protos import node_pb2, node_pb2_grpc

log = logging.getLogger(__name__)

MAX_PODS_PER_REPORT = 1000
# Peers an agent is told about (its witnesses); a sample in a larger cluster.
MAX_PEERS = 32
# Peer-list changes reach the sessions at most this often (a join storm is coalesced).
PEER_BROADCAST_SECONDS = 1.0


def peer_broadcast_wait(last: float, now: float, interval: float = PEER_BROADCAST_SECONDS) -> float:
    """Seconds until the next peer-list broadcast may go out (0: at once)."""
    return max(0.0, last + interval - now)


def assignment_inputs(pod: Pod) -> tuple[object, ...]:
    """What of a pod its assignment (convert.assignment_to_proto, the environment and files
    resolved for it) is made from: all of it but its status and bookkeeping. (Its status
    is read only for a pod whose node is gone, which has no session to tell.)"""
    meta = pod.meta
    return (
        meta.name,
        meta.namespace,
        meta.uid,
        meta.labels,
        meta.annotations,
        pod.spec,
        pod.owner,
        pod.node_name,
        pod.epoch,
        pod.deletion_requested_at,
        pod.deletion_grace_seconds,
    )


def _same_assignment(previous: StoredObject | None, pod: Pod) -> bool:
    """Whether a bound pod's change leaves what its node is told as it was (a status the
    agent itself reported does: re-sending the node's whole set for each of its pods'
    reports was O(pods on the node) per report, twice per pod at apply). Told by the
    pod's previous version: a dict of every bound pod's assignment_inputs, kept to know
    them, was ~150 bytes a pod."""
    return isinstance(previous, Pod) and assignment_inputs(previous) == assignment_inputs(pod)


# How often stop orders held back by the drain gate are checked again.
STOP_GATE_RECHECK = 1.0
# How often a request to resend reports, waiting for the master to take writes, looks again.
RESEND_RECHECK = 0.1


def resend_now(due: bool, writable: bool) -> bool:
    """Whether a session asks its agent for every report now: after a reload (`due`), and
    only once the master takes writes again. A reload happens with writes shut (a settle,
    a leader resuming); reports applied then would be refused, ending the session, and
    the agent's next registration is refused too until writes open."""
    return due and writable


def recheck_after(withheld: bool, gate_shut: bool) -> float | None:
    """How long a session's loop waits for a kick before it looks again (None: until
    kicked). Neither the drain gate nor the write gate says when it opens, nor whether it
    will: a resend waits for it to open, and a master that stops settling and follows
    (deposed) ends its sessions (ClusterState.following)."""
    waits = [w for w, on in ((STOP_GATE_RECHECK, withheld), (RESEND_RECHECK, gate_shut)) if on]
    return min(waits, default=None)


# Trailing metadata of a follower's refusal: the leader's address (the agent goes there).
LEADER_METADATA = "pinnace-leader"


class _Flag(asyncio.Event):
    """A session's flag that also sets the session's `kick`, so its loop waits on one event
    (waiting on each flag took four new tasks per wake-up: with 1,000 sessions and a
    heartbeat each a second, most of the master's time)."""

    def __init__(self, kick: asyncio.Event) -> None:
        super().__init__()
        self._kick = kick

    def set(self) -> None:
        super().set()
        self._kick.set()


class _KickingQueue(asyncio.Queue[node_pb2.MasterMessage]):
    """The session's way down for relayed messages (logs, exec): a put kicks the session."""

    def __init__(self, kick: asyncio.Event) -> None:
        super().__init__()
        self._kick = kick

    def put_nowait(self, item: node_pb2.MasterMessage) -> None:
        super().put_nowait(item)
        self._kick.set()


@dataclass(slots=True)
class _Session:
    session_id: str
    # Set whenever one of the flags below is, when the agent's side ends, and when a
    # message waits on the way down: the session's loop waits on this one event only.
    # (It waited on four tasks with asyncio.wait; at 1,000 heartbeats a second that
    # bookkeeping was the largest single share of the master's steady-state CPU.)
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    # A newer session for the same node took over: this one ends.
    superseded: asyncio.Event = field(init=False)
    # The node's assignment set changed: send it again.
    dirty: asyncio.Event = field(init=False)
    # The cluster's nodes changed: the agent's witness list may have.
    peers_changed: asyncio.Event = field(init=False)
    # Only the newest heartbeat ack waits to be sent (it acknowledges all before
    # it), so an agent that stops reading costs the master nothing per heartbeat.
    ack_due: asyncio.Event = field(init=False)
    ack_sequence: int = 0
    # The session's heartbeat plans (master/controllers/session_plan.py).
    plan: SessionPlan | None = None
    # A new heartbeat plan the next ack carries (longer, or offered shorter).
    offer: PlanOffer | None = None
    # Its stream is open (from the agent's hello to its end): shrinks offered between
    # beats go only to such a session.
    streaming: bool = False
    # The service table may have changed (master/api/servicetable.py).
    services_changed: asyncio.Event = field(init=False)
    # The master reloaded its memory from the store: the agent is asked for its reports
    # again (ClusterState.on_replaced), once the master takes writes.
    resend_due: asyncio.Event = field(init=False)
    # What of the node's assignment set goes next (the whole set, or what changed), and
    # the numbering; made again with the agent's hello (whether it takes changes).
    feed: AssignmentFeed = field(default_factory=lambda: AssignmentFeed(takes_changes=False))
    # Stopping pods whose stop order the drain gate holds back (sent without it so far).
    withheld: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.superseded = _Flag(self.kick)
        self.dirty = _Flag(self.kick)
        self.peers_changed = _Flag(self.kick)
        self.ack_due = _Flag(self.kick)
        self.services_changed = _Flag(self.kick)
        self.resend_due = _Flag(self.kick)


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    def __init__(
        self,
        state: ClusterState,
        leases: LeaseTable,
        manager: ControllerManager,
        clock: Clock,
        heartbeat_interval: float,
        lease_seconds: float,
        logs: LogRelay | None = None,
        usage: UsageTable | None = None,
        max_heartbeat_rate: float = DEFAULT_MAX_HEARTBEATS_PER_SECOND,
        session_grace: float = NodeHealthSettings().session_grace,
        on_registered: Callable[[str], None] | None = None,
        joining: Callable[[str], bool] | None = None,
        registrations: JoinAdmission | None = None,
        heartbeat_budget: HeartbeatBudget | None = None,
        plan_tally: PlanTally | None = None,
    ) -> None:
        # A joined node's first registration ends its join (master/pki/admission.py).
        self._on_registered = on_registered or (lambda name: None)
        # Registrations in flight are limited as joins are; a node whose join holds a
        # slot is not counted twice (master/pki/admission.py).
        self._joining = joining or (lambda name: False)
        self._registrations = registrations or JoinAdmission(
            DEFAULT_REGISTRATIONS_IN_FLIGHT, noun="registrations"
        )
        # Container logs asked for through the APIs travel on the sessions.
        self.logs = logs if logs is not None else LogRelay()
        # The agents' CPU and memory readings, for `pinnace top` (master/app/usage.py).
        self._usage = usage if usage is not None else UsageTable()
        self._state = state
        self._leases = leases
        self._manager = manager
        self._clock = clock
        self._heartbeat_interval = heartbeat_interval
        self._lease_seconds = lease_seconds
        # The heartbeats a second the plans are sized for: the cap, less while the master's
        # loop is behind (master/controllers/heartbeat_budget.py).
        self._budget = heartbeat_budget or HeartbeatBudget(max_heartbeat_rate)
        # Each session's newest plan, summed; shrinks go as the budget has room for them
        # (master/controllers/plan_pacing.py).
        self.plan_tally = plan_tally if plan_tally is not None else PlanTally()
        self._pacer = ShrinkPacer()
        # How many shrinks the ticks may offer between beats, to which sessions in what
        # order, and when that order is made again (shrink_offers.py).
        self._offer_pace = OfferPace()
        self._shrink_queue: list[tuple[str, SessionPlan]] = []
        self._reorder_at = float("-inf")
        self._session_grace = session_grace
        self._sessions: dict[str, _Session] = {}
        # Set when the master stops: the sessions it ends then say nothing about the nodes.
        self._stopping = False
        self._reports = NodeReports(state, clock)
        # Every Service's address and ready endpoints, for the node proxies and DNS.
        self._service_table = ServiceTableFeed(state)
        # Each node's (address, witness port) as last seen, and the sorted witness rows
        # (None: to be rebuilt): status changes then cost the sessions nothing.
        self._peer_seen: dict[str, tuple[str, int, bool]] = {}
        self._witness_rows: list[tuple[str, str, int]] | None = None
        self._witness_stale = False
        # The first name (by sort order) of the nodes changed since the rows were built.
        self._witness_changed_min: str | None = None
        self._peers_broadcast_at = float("-inf")
        self._peers_broadcast_task: asyncio.Task[None] | None = None
        # The head of the witness list and the cluster size last broadcast.
        self._peers_told: tuple[list[tuple[str, str, int]], int] | None = None
        self._node_count = 0
        self._counted: set[str] = set()
        # Each bound claim's requested bytes as last sent (a change re-sends its node's set).
        self._claim_bytes: dict[str, int] = {}
        # Whether a stopping pod may be told to stop (the LB has drained it).
        self._released: Callable[[Pod], bool] = lambda pod: True
        # Service environment variables by (namespace, enableServiceLinks), dropped when a
        # Service changes what they hold (`_service_seen`: that part of each Service).
        self._service_env: dict[tuple[str, bool], tuple[tuple[str, str], ...]] = {}
        self._service_seen: dict[str, tuple[object, ...]] = {}
        # The nodes whose pods read each ConfigMap and Secret (configreaders.py).
        self._config_readers = ConfigReaders()
        state.subscribe(self._on_change)
        state.on_replaced(self._ask_resend)

    def _ask_resend(self) -> None:
        """Memory was reloaded from the store: pod statuses, pod routes and proxy problems
        the agents reported and memory held unstored are gone, and an agent says a report
        again only when it changes. Every connected agent is asked for all of them."""
        if self._sessions:
            log.info("memory was reloaded: asking %d agents for their reports", len(self._sessions))
        for session in self._sessions.values():
            session.resend_due.set()
            # What the agent holds is in doubt too: the whole set goes with the request.
            session.feed.all_changed()
            session.dirty.set()

    def stopping(self) -> None:
        """The master is stopping: sessions that end from now on are not marked lost.

        Stopping ends every session at once; marking each node disconnected wrote a
        node and a warning event per node (5,000 of each at scale) on a loop that was
        shutting down, and the master did not exit within 30 s of SIGTERM. The next
        master grants every node a fresh lease anyway (nodes.py), so nothing is lost.
        """
        self._stopping = True

    def gate_stops(self, released: Callable[[Pod], bool]) -> None:
        self._released = released

    def refresh(self, nodes: set[str]) -> None:
        """The LB released stopping pods of these nodes: their stop orders go."""
        for name in nodes:
            session = self._sessions.get(name)
            if session is not None:
                self._release_withheld(session)
                session.dirty.set()

    def _release_withheld(self, session: _Session) -> bool:
        """The withheld stop orders the drain gate lets go now (gone pods too) become
        changes of their pods; whether there were any."""
        released = {
            key
            for key in session.withheld
            if not isinstance(p := self._state.get_key("Pod", key), Pod) or self._released(p)
        }
        session.withheld -= released
        for key in released:
            session.feed.pod_changed(key)
        return bool(released)

    def _all_changed(self, session: _Session) -> None:
        """What all of the session's node's pods are made of may have changed."""
        session.feed.all_changed()
        session.dirty.set()

    def _witnesses(self, fresh: bool = True) -> tuple[list[tuple[str, str, int]], int]:
        """Every node's (name, address, witness port) by name, and the number of nodes.

        `fresh=False` (a session starting) keeps the last rows built when every node
        changed since sorts after their head (the rows any session is told) and the
        cluster is larger than the head: each join made them stale, and the next session
        start rebuilt them all (every node filtered and sorted, per join). The size told
        may then lag by the joins since, which no agent's verdict looks at in a cluster
        that large (convert.peer_list_news); the change's broadcast rebuilds them anyway.
        """
        rows = self._witness_rows
        if rows is None or (self._witness_stale and (fresh or not self._head_holds(rows))):
            self._witness_stale = False
            self._witness_changed_min = None
            nodes = witness_members(
                [n for n in self._state.objects("Node") if isinstance(n, Node)],
                lambda name: bool(self._state.pods_on_node(name)),
            )
            rows = self._witness_rows = sorted(
                (n.meta.name, n.address, n.witness_port) for n in nodes if n.witness_port
            )
            self._node_count = len(nodes)
            self._counted = {n.meta.name for n in nodes}
        return rows, self._node_count

    def _head_holds(self, rows: list[tuple[str, str, int]]) -> bool:
        """Whether the nodes changed since `rows` were built all sort after their head."""
        if len(rows) <= MAX_PEERS + 1 or self._node_count <= MAX_PEERS + 1:
            return False
        first_changed = self._witness_changed_min
        return first_changed is not None and first_changed > rows[MAX_PEERS][0]

    def _witness_changed(self, name: str) -> None:
        self._witness_stale = True
        if self._witness_changed_min is None or name < self._witness_changed_min:
            self._witness_changed_min = name

    def _broadcast_peers(self) -> None:
        """Tell every session the peer list changed, at most once per PEER_BROADCAST_SECONDS.

        A thousand agents joining at once changed the list a thousand times; waking
        every session for each change was a million wake-ups, and the event loop had
        no time left to accept the last registrations. Coalesced, a join storm costs
        each session one wake-up per interval; a new session gets the list at once.
        """
        due = self._peers_broadcast_task
        if due is not None and not due.done():
            return
        now = self._clock.monotonic()
        wait = peer_broadcast_wait(self._peers_broadcast_at, now)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            wait = 0.0  # no loop (a synchronous caller): nothing to coalesce with
        if wait <= 0:
            self._peers_broadcast_at = now
            witnesses, size = self._witnesses()
            head = witnesses[: MAX_PEERS + 1]
            if not peer_broadcast_news(self._peers_told, (head, size), MAX_PEERS):
                return  # no session's list would change: none is woken
            self._peers_told = (head, size)
            for each in self._sessions.values():
                each.peers_changed.set()
            return
        self._peers_broadcast_task = loop.create_task(self._broadcast_later(wait))

    async def _broadcast_later(self, wait: float) -> None:
        await self._clock.sleep(wait)
        self._peers_broadcast_task = None
        self._broadcast_peers()

    def _on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        if isinstance(obj, Pod):
            before = previous if isinstance(previous, Pod) else None
            self._config_readers.pod_changed(key_of(obj), before, None if deleted else obj)
        if isinstance(obj, Node):
            # Readiness too: a dead node leaves the witness list (witness_members).
            seen = None if deleted else (obj.address, obj.witness_port, obj.status.ready)
            if self._peer_seen.get(obj.meta.name) == seen and not deleted:
                return  # a status change: the witness list is the same
            if deleted:
                self._peer_seen.pop(obj.meta.name, None)
            elif seen is not None:
                self._peer_seen[obj.meta.name] = seen
            self._witness_changed(obj.meta.name)
            self._broadcast_peers()
        elif isinstance(obj, Pod) and (
            obj.node_name or (isinstance(previous, Pod) and previous.node_name)
        ):
            changed = deleted or not _same_assignment(previous, obj)
            if changed:
                key = key_of(obj)
                self._pod_changed_on(obj.node_name, key)
                if isinstance(previous, Pod) and previous.node_name != obj.node_name:
                    self._pod_changed_on(previous.node_name, key)  # gone from that node's set
            if deleted and self._peer_seen.get(obj.node_name, (None, None, True))[2] is False:
                # The last pods of a NotReady node going may make it dead: recount.
                self._witness_changed(obj.node_name)
                self._broadcast_peers()
        elif isinstance(obj, Service):
            self._on_service(obj, deleted)
        elif isinstance(obj, PersistentVolume):
            # A Released volume to delete: its node gets its removal orders again.
            session = self._sessions.get(obj.node_name)
            if session is not None:
                session.dirty.set()
        elif isinstance(obj, PersistentVolumeClaim) and obj.node_name:
            # A resized claim: the node's pods carry the new size (the agent grows it).
            if self._claim_bytes.get(key_of(obj)) != obj.storage_bytes:
                self._claim_bytes[key_of(obj)] = obj.storage_bytes
                session = self._sessions.get(obj.node_name)
                if session is not None:
                    self._all_changed(session)
        elif kind in ("ConfigMap", "Secret"):
            # Nodes with a pod reading it get their values again (containers that start
            # from now on see the change; running ones are not restarted).
            if not self._config_readers.built:
                self._config_readers.build(self._state.pods())
            for name in self._config_readers.nodes_reading(kind, obj.meta.namespace, obj.meta.name):
                session = self._sessions.get(name)
                if session is not None:
                    self._all_changed(session)

    def _pod_changed_on(self, node_name: str, key: str) -> None:
        session = self._sessions.get(node_name) if node_name else None
        if session is not None:
            session.feed.pod_changed(key)
            session.dirty.set()

    def _on_service(self, svc: Service, deleted: bool) -> None:
        key = key_of(svc)
        seen = None if deleted else (svc.cluster_ip, svc.ports, svc.headless)
        if self._service_seen.get(key) == seen:
            return  # a status change (the load balancer's): the variables stay
        if seen is None:
            self._service_seen.pop(key, None)
        else:
            self._service_seen[key] = seen
        self._service_env.clear()
        # Containers that start from now on (a restart, a new pod) see the change; the
        # ones that run keep their environment, as with the kubelet.
        for session in self._sessions.values():
            self._all_changed(session)

    def _services_env(self, pod: Pod) -> tuple[tuple[str, str], ...]:
        """The pod's Service variables (master/app/servicenv.py), computed once per
        namespace and links setting until a Service changes."""
        key = (pod.meta.namespace, pod.spec.enable_service_links is not False)
        found = self._service_env.get(key)
        if found is None:
            services = (s for s in self._state.objects("Service") if isinstance(s, Service))
            found = self._service_env[key] = service_env(key[0], key[1], services)
        return found

    def _resolve_env(self, pod: Pod, container: Container) -> ResolvedEnv:
        node = self._state.get("Node", pod.node_name)
        lookup = self._lookup_in(pod.meta.namespace)
        env = resolve_container_env(
            pod, container, lookup, node if isinstance(node, Node) else None
        )
        if env.error:
            return env
        # A configMap or secret volume that cannot be made holds the container back too.
        return replace(env, error=mount_error(pod, container, lookup))

    def _lookup_in(self, namespace: str) -> Callable[[str, str], StoredObject | None]:
        """ConfigMaps and Secrets a pod reads are those of its own namespace."""
        return lambda kind, name: self._state.get(kind, name, namespace)

    def _resolve_files(self, pod: Pod, volume: Volume) -> ResolvedFiles:
        node = self._state.get("Node", pod.node_name) if volume.sources else None
        return resolve_volume_files(
            volume,
            self._lookup_in(pod.meta.namespace),
            pod,
            node if isinstance(node, Node) else None,
        )

    # -- RegisterNode ----------------------------------------------------------------

    async def RegisterNode(
        self, request: node_pb2.RegisterNodeRequest, context: grpc.aio.ServicerContext
    ) -> node_pb2.RegisterNodeResponse:
        info = request.node
        if not self._state.writable:
            # A follower master: the agent goes to the leader it names, or the next master.
            leader = self._state.leader_address()
            if leader:
                context.set_trailing_metadata(((LEADER_METADATA, leader),))
            await context.abort(grpc.StatusCode.UNAVAILABLE, self._state.write_refusal())
        if not is_node_name(info.name):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node name {info.name[:80]!r} is not a valid DNS-1123 subdomain",
            )
        if not info.address or len(info.address) > 64:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "node address (--advertise-address) is required"
            )
        if not self._joining(info.name):
            verdict = self._registrations.admit(info.name, self._clock.monotonic())
            if isinstance(verdict, Busy):
                context.set_trailing_metadata(
                    ((RETRY_AFTER_METADATA, f"{verdict.retry_after:.2f}"),)
                )
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, verdict.message)
        try:
            return await self._register(request, info)
        except BaseException:
            self._registrations.finished(info.name, self._clock.monotonic())
            raise

    async def _register(
        self, request: node_pb2.RegisterNodeRequest, info: node_pb2.NodeInfo
    ) -> node_pb2.RegisterNodeResponse:
        existing = self._state.get("Node", info.name)
        node = node_from_proto(
            info, existing if isinstance(existing, Node) else None, self._clock.now()
        )
        node = self._with_pod_cidr(node, existing if isinstance(existing, Node) else None)
        # The kubelet's writes on Kubernetes: the Node itself (labels, addresses), then its
        # status (capacity, conditions), each recorded in managedFields.
        now = self._clock.now()
        node = with_entries(node, self._state.writer_fields(existing, node, KUBELET, "", now))
        self._state.put_by(KUBELET, node, "status")
        if existing is None:
            self._state.record_event("Node", info.name, "Registered", f"node {info.name} joined")
        self._leases.renew(info.name, self._clock.monotonic())
        self._leases.welcome(info.name)
        self._leases.session_started(info.name)
        for report in request.pods[:MAX_PODS_PER_REPORT]:
            self._reports.apply(info.name, pod_report_from_proto(report), adopted=True)
        old = self._sessions.get(info.name)
        # Heartbeats stretch as the cluster grows, the node's lease with them.
        plan = self._plan()
        session = _Session(
            session_id=uuid.uuid4().hex, plan=SessionPlan(plan, self._clock.monotonic())
        )
        self._sessions[info.name] = session
        if old is not None:
            old.superseded.set()
        self._manager.poke()
        self._leases.set_lease(info.name, plan.lease)
        await self._state.flush()
        self._on_registered(info.name)
        return node_pb2.RegisterNodeResponse(
            session_id=session.session_id,
            heartbeat_interval_seconds=plan.interval,
            lease_seconds=plan.lease,
            pod_cidr=node.pod_cidr,
        )

    def _with_pod_cidr(self, node: Node, existing: Node | None) -> Node:
        """The node with its pod subnet of --cluster-cidr: the one it holds, else the lowest
        free one (master/app/podcidr.py); none left is a Warning event of the node."""
        cluster = self._state.cluster_cidr
        if cluster is None:
            return node
        current = existing.pod_cidr if existing is not None else ""
        others = (
            n.pod_cidr
            for n in self._state.objects("Node")
            if isinstance(n, Node) and n.meta.name != node.meta.name
        )
        mask = self._state.node_cidr_mask
        pod_cidr = node_pod_cidr(cluster, mask, current, others)
        if not pod_cidr:
            self._state.record_event(
                "Node",
                node.meta.name,
                "CIDRNotAvailable",
                f"no pod subnet left in --cluster-cidr {cluster} (/{mask} each): pods on node "
                f"{node.meta.name} are reached at its address only; give a larger range",
                type_="Warning",
            )
        elif pod_cidr != current:
            self._state.record_event(
                "Node", node.meta.name, "CIDRAssigned", f"pod subnet {pod_cidr}"
            )
        return replace(node, pod_cidr=pod_cidr)

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
        session.streaming = True
        if session.plan is not None:
            # Counted from its stream on (a registration that never streams beats never),
            # until the stream ends.
            self.plan_tally.set(node_name, session.plan.given.interval)
        # Changes from here on if the agent takes them; the whole set first either way.
        session.feed = AssignmentFeed(takes_changes=first.hello.takes_assignment_changes)
        session.withheld = set()
        session.dirty.set()
        session.peers_changed.set()
        session.services_changed.set()
        unsubscribe = self._service_table.on_stale(session.services_changed.set)
        # Log requests (master/api/logs.py) share the way down.
        down = _KickingQueue(session.kick)
        self.logs.attach(node_name, down)
        reader = asyncio.create_task(self._read(node_name, session, request_iterator))
        reader.add_done_callback(lambda _: session.kick.set())
        peers_sent: node_pb2.PeerList | None = None
        removals_sent: list[str] | None = None
        table_sent = -1
        # Its registration is in flight until these first sets are on their way.
        admitted = True
        try:
            while not reader.done() and not session.superseded.is_set():
                if not session.kick.is_set():
                    # Stop orders held back by the gate (the LB still draining them):
                    # looked at every second, the gate may open by timeout alone.
                    gate_shut = session.resend_due.is_set() or not self._state.writable
                    recheck = recheck_after(bool(session.withheld), gate_shut)
                    if recheck is not None:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(recheck):
                                await session.kick.wait()
                    else:
                        await session.kick.wait()
                # Cleared before the flags are read: a flag set from here on kicks again.
                session.kick.clear()
                if reader.done() or session.superseded.is_set():
                    break
                if self._state.following:
                    # Deposed while alive: a leader that kept its agents' sessions acked
                    # their heartbeats, so the new leader never heard them, showed their
                    # nodes NotReady (Unknown) and would have evicted their pods. Ended,
                    # the agent registers again and the refusal names the leader. A leader
                    # only pausing (settling) keeps them: it may resume, and asks its
                    # agents for their reports then.
                    log.info("session of node %s ends: this master does not lead", node_name)
                    break
                while not down.empty():
                    yield down.get_nowait()
                if session.ack_due.is_set():
                    session.ack_due.clear()
                    ack = node_pb2.HeartbeatAck(
                        sequence=session.ack_sequence, assignment_sequence=session.feed.sequence
                    )
                    if session.offer is not None:
                        ack.heartbeat_interval_seconds = session.offer.plan.interval
                        ack.lease_seconds = session.offer.plan.lease
                        ack.plan = session.offer.number
                        session.offer = None
                    yield node_pb2.MasterMessage(heartbeat_ack=ack)
                if session.peers_changed.is_set():
                    session.peers_changed.clear()
                    witnesses, cluster_size = self._witnesses(fresh=False)
                    if node_name not in self._counted:
                        cluster_size += 1  # it holds a session: it counts, dead or not
                    peers = peers_to_proto(node_name, witnesses, cluster_size, MAX_PEERS)
                    if peer_list_news(peers_sent, peers):
                        peers_sent = peers
                        yield node_pb2.MasterMessage(peers=peers)
                if resend_now(session.resend_due.is_set(), self._state.writable):
                    session.resend_due.clear()
                    yield self._resend_request(node_name)
                if session.services_changed.is_set():
                    session.services_changed.clear()
                    table = self._service_table.current()
                    if table.version != table_sent:
                        table_sent = table.version
                        yield node_pb2.MasterMessage(services=table)
                if session.withheld and self._release_withheld(session):
                    session.dirty.set()
                if session.dirty.is_set() and not reader.done():
                    session.dirty.clear()
                    sending = self._assignments(node_name, session)
                    # Popped as they go: this frame lives as long as the session and keeps
                    # whatever its locals hold until the next send (see _assignments).
                    while sending:
                        yield sending.pop(0)
                    removals = removal_orders(self._state, node_name)
                    if removals != removals_sent:
                        removals_sent = removals
                        orders = node_pb2.VolumeOrders(remove=removals)
                        yield node_pb2.MasterMessage(volume_orders=orders)
                if admitted:
                    admitted = False
                    self._registrations.finished(node_name, self._clock.monotonic())
        finally:
            session.streaming = False
            self._registrations.finished(node_name, self._clock.monotonic())
            unsubscribe()
            self.logs.detach(node_name, down)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            # A broken stream is a suspicion, not yet a verdict: the agent has
            # `session_grace` to come back (master/controllers/lifecycle.py).
            log.info("session of node %s ended", node_name)
            if self._sessions.get(node_name) is session and not session.superseded.is_set():
                self.plan_tally.drop(node_name)
            if (
                self._sessions.get(node_name) is session
                and not session.superseded.is_set()
                and not self._stopping
                and not self._state.following  # the leader judges the node, not this one
            ):
                # Unless many ended at once: then the master is the suspect, and the node
                # keeps a fresh lease (master/controllers/session_loss.py).
                if self._manager.session_ended(node_name):
                    self._mark_session(node_name, lost=True)
                self._manager.poke()

    def _assignments(self, node_name: str, session: _Session) -> list[node_pb2.MasterMessage]:
        """What goes of the node's assignment set (the whole set or what changed, as
        `session.feed` says), as the messages to send; `session.withheld` kept up to date
        (the stopping pods whose stop order the drain gate holds back).

        Built here, not in the session's loop: the loop's frame lives as long as the
        session, and what its locals held stayed alive until the node's next send. That was
        the node's pods as they were bound (every pod's old version, once its status
        changed) and the whole set twice over in protobuf (the message and its last chunk,
        ~2.2 KiB of upb arena a pod each, malloc'ed where tracemalloc does not look): 5.8 KiB
        a pod, ~280 MiB of the master's memory at 5,000 nodes / 50,000 pods
        (tests/bench/session_retention.py)."""
        send = session.feed.take()
        if isinstance(send, SendWhole):
            pods = self._state.pods_on_node(node_name)
            msg = assignments_to_proto(
                self._state.resource_version,
                pods,
                self._released,
                self._resolve_env,
                self._resolve_files,
                self._services_env,
                sequence=send.sequence,
            )
            session.withheld = {key_of(p) for p in pods if self._withheld(p)}
            return [node_pb2.MasterMessage(assignments=chunk) for chunk in chunk_assignments(msg)]
        if not isinstance(send, SendChanges):
            return []
        changed: list[Pod] = []
        removed: list[str] = []
        for key in send.keys:
            pod = self._state.get_key("Pod", key)
            if isinstance(pod, Pod) and pod.node_name == node_name:
                changed.append(pod)
                if self._withheld(pod):
                    session.withheld.add(key)
                else:
                    session.withheld.discard(key)
            else:
                removed.append(key)
                session.withheld.discard(key)
        messages = assignment_changes_to_proto(
            self._state.resource_version,
            send.first,
            changed,
            removed,
            self._released,
            self._resolve_env,
            self._resolve_files,
            self._services_env,
        )
        session.feed.numbered(len(messages))
        return [node_pb2.MasterMessage(assignment_changes=m) for m in messages]

    def _withheld(self, pod: Pod) -> bool:
        """A stopping pod whose stop order the drain gate holds back."""
        return bool(pod.deletion_requested_at) and not self._released(pod)

    def _resend_request(self, node_name: str) -> node_pb2.MasterMessage:
        """The request for every report, after the node's session mark is made true again
        (the reload may have brought back a "session lost" this session ended)."""
        with contextlib.suppress(NotLeaderError):
            self._mark_session(node_name, lost=False)
        log.debug("node %s: asking its agent for every report again", node_name)
        reason = "the master reloaded its memory from the store"
        return node_pb2.MasterMessage(resend_reports=node_pb2.ResendReports(reason=reason))

    def _plan(self) -> HeartbeatPlan:
        """The heartbeat plan for the cluster's size now (master/controllers/heartbeats.py)."""
        nodes = self._state.count("Node")
        return cluster_plan(nodes, self._heartbeat_interval, self._lease_seconds, self._budget)

    def _admit_shrink(self, now: float, old: HeartbeatPlan, new: HeartbeatPlan) -> bool:
        """Whether the heartbeat budget has room for a session's shrink from `old` to `new`
        now (master/controllers/plan_pacing.py)."""
        allowed = planned_rate(self._state.count("Node"), self._budget)
        steady = self._budget.steady(now, STEADY_BUDGET_SECONDS)
        verdict = self._pacer.judge(now, allowed, self.plan_tally.rate, old, new, steady)
        PLAN_SHRINKS.labels(
            "admitted" if verdict == "admitted" else "deferred",
            verdict if verdict != "admitted" else "",
        ).inc()
        return verdict == "admitted"

    async def run_shrink_offers(self) -> None:
        """Offers shrinks between beats every OFFER_TICK, for as long as the master runs."""
        while True:
            await self._clock.sleep(OFFER_TICK)
            self.offer_shrinks()

    def offer_shrinks(self) -> int:
        """Offers the shorter plan for the cluster now to the stretched sessions the budget
        has room for, at once on their streams, not with their next beat's ack (up to 40 s
        away: master/controllers/shrink_offers.py); how many were offered."""
        wanted, settled = self._plan(), self._budget.full
        shrink = ShrinkSettings()
        share = shrink.settled_shrink_to if settled else shrink.shrink_to
        if self.plan_tally.longest * share < wanted.interval:
            # No session plans long enough to shrink (the steady state): nothing walked.
            self._shrink_queue.clear()
            return 0
        now = self._clock.monotonic()
        if not self._budget.steady(now, STEADY_BUDGET_SECONDS):
            return 0  # the pacer would say "unsteady" to each
        if now >= self._reorder_at:
            live = (
                (name, s.plan)
                for name, s in self._sessions.items()
                if s.plan is not None and s.streaming and not s.superseded.is_set()
            )
            self._shrink_queue = order_shrinks(now, live, wanted)
            wait = REORDER_SECONDS if self._shrink_queue else IDLE_REORDER_SECONDS
            self._reorder_at = now + wait
        if not self._shrink_queue:
            return 0
        allowed = planned_rate(self._state.count("Node"), self._budget)
        over = self._pacer.settings.over
        most = self._offer_pace.allowance(now, allowed, self.plan_tally.rate, over)
        picked = pick_shrinks(
            now,
            self._shrink_queue,
            wanted,
            settled,
            most,
            self._budget.lag >= LATE_SECONDS,
            lambda old, new: self._admit_shrink(now, old, new),
            self._streaming_plan,
        )
        for name, offer in picked:
            session = self._sessions[name]
            # Sent as an ack of the agent's last beat (its sequence again), carrying the plan.
            session.offer = offer
            self.plan_tally.set(name, offer.plan.interval)
            session.ack_due.set()
        self._offer_pace.spent(len(picked))
        return len(picked)

    def _streaming_plan(self, name: str, plan: SessionPlan) -> bool:
        """Whether `plan` is the plan of node `name`'s current session, its stream open."""
        s = self._sessions.get(name)
        return s is not None and s.plan is plan and s.streaming and not s.superseded.is_set()

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
                f"(NotReady unless it is back within {self._session_grace:g}s)",
                "Warning",
            )

    async def _read(
        self,
        node_name: str,
        session: _Session,
        request_iterator: AsyncIterator[node_pb2.AgentMessage],
    ) -> None:
        async for msg in request_iterator:
            self._receive(node_name, session, msg)

    def _receive(self, node_name: str, session: _Session, msg: node_pb2.AgentMessage) -> None:
        """One message from the agent. (Apart from _read's loop, whose frame lives as long
        as the session: a report or routes message left in its locals kept the agent's
        whole last message alive until the next one of its kind.)"""
        body = msg.WhichOneof("body")
        if body == "heartbeat":
            HEARTBEATS.inc()
            now = self._clock.monotonic()
            self._leases.renew(node_name, now)
            # How late this beat is read: the master's own backlog (read_backlog.py).
            sent = msg.heartbeat.sent_at
            if sent:
                self._manager.read_backlog.observe(node_name, sent, self._clock.now(), now)
            # The plan for the cluster now differs from this node's: a longer one is judged
            # by at once and sent with this ack (or the early nodes' one-second beats would
            # keep the total far above the cap: 500 + 500 x ln(N / 500) a second); a shorter
            # one (the budget grew back) is offered, and judged by once the agent's
            # heartbeat says it runs it (master/controllers/session_plan.py).
            if session.plan is not None:
                wanted, settled = self._plan(), self._budget.full
                running = msg.heartbeat.plan
                step = session.plan.heartbeat(
                    now,
                    running,
                    wanted,
                    settled,
                    lambda old, new: self._admit_shrink(now, old, new),
                )
                if step.judge_lease is not None:
                    self._leases.set_lease(node_name, step.judge_lease)
                if step.offer is not None:
                    session.offer = step.offer
                    self.plan_tally.set(node_name, step.offer.plan.interval)
            node = self._state.get("Node", node_name)
            if isinstance(node, Node) and not node.status.ready:
                self._manager.poke()
            session.ack_sequence = msg.heartbeat.sequence
            session.ack_due.set()
        elif body == "log_chunk":
            self.logs.deliver(msg.log_chunk)
        elif body == "exec_output":
            self.logs.execs.deliver(msg.exec_output)
        elif body == "usage":
            self._usage.record(node_name, report_from_proto(msg.usage))
            record_volume_report(
                self._state,
                node_name,
                volume_uses_from_proto(msg.usage),
                msg.usage.volumes_listed,
            )
            self._manager.record_claim_disk(node_name, claim_disk_from_proto(msg.usage))
        elif body == "statuses":
            for report in msg.statuses.pods[:MAX_PODS_PER_REPORT]:
                self._reports.apply(node_name, pod_report_from_proto(report), adopted=False)
        elif body == "assignments_resync":
            # Only an agent that takes changes asks (its set built of them is in doubt);
            # always answered: it ignores changes until the whole set comes.
            asked = msg.assignments_resync
            if session.feed.takes_changes:
                log.info(
                    "node %s asks for its whole assignment set (%s)",
                    node_name,
                    asked.reason[:200] or "no reason given",
                )
                self._all_changed(session)
        elif body == "goodbye":
            self._leases.say_goodbye(node_name, self._clock.monotonic())
            self._reports.goodbye(node_name, msg.goodbye.reason)
        elif body == "notice":
            notice = msg.notice
            self._reports.notice(node_name, notice.reason, notice.message, notice.again)
        elif body == "proxy_problems":
            reported = [
                Reported(p.namespace, p.service, p.port, p.reason, p.message)
                for p in msg.proxy_problems.problems
            ]
            self._reports.proxy_problems(node_name, reported)
        elif body == "pod_routes":
            routes = msg.pod_routes
            unreached = [(r.node, r.pod_cidr) for r in routes.unreached]
            self._reports.pod_routes(node_name, routes.ready_pod_cidr, unreached)
