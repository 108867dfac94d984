"""Runs the controllers against the ClusterState: the master's reconcile loop.

State changes mark work (a deployment to reconcile, pods to schedule, nodes to
check) through a state listener; one asyncio task drains the work in passes:
  1. node leases, goodbyes and probes -> Ready/Unknown/NotReady, eviction of
     lost nodes' pods (master/controllers/lifecycle.py decides; a loop that
     was itself stalled first gives every node a fresh lease);
  2. dirty deployments -> deployment_actions -> create/delete pods, status;
  3. pending pods -> schedule_batch -> bind (or say why not, once per reason);
  4. pods asked to stop on nodes that cannot confirm -> forgotten.
A periodic resync marks everything dirty, so a missed trigger costs at most one
resync period, never correctness. Every decision is made by a pure function;
this module only applies the returned actions and records events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Protocol

from kernel.clock import Clock
from master.controllers.actions import CreatePod, DeletePod, SetDeploymentStatus
from master.controllers.claim_placement import Waiting, place_pods_with_claims
from master.controllers.claims import ClaimDisk, claim_room
from master.controllers.deployment import burst_replicas, deployment_actions, steady_status
from master.controllers.epochs import AssignmentEpochs
from master.controllers.eviction_rate import LeaseEvictions
from master.controllers.lifecycle import (
    REASONS,
    EvictPod,
    MarkPodNotReady,
    Moment,
    NodeAction,
    NodeHealthSettings,
    NodeSignals,
    SetEvictionRate,
    SetEvictionsPaused,
    SetNodeCondition,
    reconcile_nodes,
    stalled,
)
from master.controllers.loop_held import HeldLedger
from master.controllers.namespaces import (
    TERMINATING,
    CreateDefaultAccount,
    DeleteObject,
    NamespaceAction,
    NamespaceContents,
    RemoveNamespace,
    ReportStuck,
    StopPod,
    reconcile_namespace,
)
from master.controllers.naming import random_suffix
from master.controllers.node_watch import NodeWatch, alive_until
from master.controllers.nodes import LeaseTable, NodeTransition, apply_transition
from master.controllers.owner_counts import OwnerCounts
from master.controllers.pacing import rest_after_pass
from master.controllers.read_backlog import ReadBacklog
from master.controllers.session_loss import (
    Counted,
    Opened,
    SessionLossSettings,
    SessionLossValve,
)
from master.controllers.slicing import step_over
from master.controllers.statefulset import (
    CreateClaim,
    DeleteClaim,
    SetClaimOwner,
    SetStatefulSetStatus,
    StatefulSetAction,
    orphaned_claims,
    reconcile_statefulset,
)
from master.metrics import series
from master.metrics.series import NODE_TRANSITIONS, PODS_EVICTED, READ_BACKLOG, RECONCILE, timed
from master.model import (
    DEFAULT_NAMESPACE,
    KINDS,
    POD_UNSCHEDULABLE,
    STATEFULSET_OWNER,
    Deployment,
    Namespace,
    Node,
    ObjectMeta,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    PodStatus,
    ServiceAccount,
    StatefulSet,
    StoredObject,
    evolve,
    is_namespaced,
    key_of,
    split_ref,
)
from master.scheduler import Placement, schedule_each
from master.scheduler.nodeinfo import NodeInfo
from master.scheduler.pod_index import PodIndex
from master.state import ClusterState
from master.writers import CONTROLLER_MANAGER, SCHEDULER

log = logging.getLogger(__name__)


class Reachability(Protocol):
    """Whether a silent node's pods still answer (the master's own probe)."""

    def answering(self, node: str) -> bool | None: ...


class _NotProbed:
    def answering(self, node: str) -> bool | None:
        return None


def default_account(namespace: str) -> ServiceAccount:
    """Every namespace's `default` ServiceAccount, as Kubernetes makes one."""
    return ServiceAccount(ObjectMeta(name="default", namespace=namespace))


# How long after the master starts a node without a claim disk report is not offered
# new claims (its agent reports when its session starts; sessions come back within seconds).
CLAIM_REPORT_GRACE = 20.0


class ControllerManager:
    def __init__(
        self,
        state: ClusterState,
        clock: Clock,
        leases: LeaseTable,
        lease_seconds: float = 3.0,
        eviction_timeout: float = 0.0,
        resync_seconds: float = 5.0,
        health: NodeHealthSettings | None = None,
        reachability: Reachability | None = None,
        percentage_of_nodes_to_score: int = 0,
        session_loss: SessionLossSettings | None = None,
    ) -> None:
        self._state = state
        # Many sessions ending at once excuse the nodes (master/controllers/session_loss.py).
        self._session_loss = SessionLossValve(session_loss)
        self._clock = clock
        self._leases = leases
        self._health = health or NodeHealthSettings(lease_seconds, eviction_timeout)
        self._lease_seconds = self._health.lease_seconds
        self._reachability = reachability or _NotProbed()
        self._resync_seconds = resync_seconds
        # Kubernetes' percentageOfNodesToScore (0: adaptive; below 100 nodes every node).
        self._percentage = percentage_of_nodes_to_score
        # Evictions paused because too many nodes went silent at once.
        self._paused = False
        # The nodes a pass looks at (master/controllers/node_watch.py); all on the first.
        self._node_watch = NodeWatch()
        self._full_node_check = True
        self._last_tick: float | None = None
        # When the master's own loop was held (the loop-lag probe notes it): nodes are not
        # blamed for heartbeats it could not read meanwhile (master/controllers/loop_held.py).
        self.loop_held = HeldLedger()
        # How late the master reads the fleet's heartbeats (the node servicer notes each
        # beat's send time): not the nodes' silence (master/controllers/read_backlog.py).
        self.read_backlog = ReadBacklog()
        # Evictions of nodes NotReady by their lease alone, rationed
        # (master/controllers/eviction_rate.py).
        self._lease_evictions = LeaseEvictions()
        # (namespace, name) of the deployments and statefulsets to reconcile.
        self._dirty_deployments: set[tuple[str, str]] = set()
        self._dirty_statefulsets: set[tuple[str, str]] = set()
        self._schedule_needed = True
        self._wake = asyncio.Event()
        # Each node's claim disk as last reported (memory only: refilled within seconds;
        # None: the node reported that it does not enforce sizes).
        self._claim_disks: dict[str, ClaimDisk | None] = {}
        self._started = clock.monotonic()
        # Last FailedScheduling message per pod key, so a stuck pod is reported once
        # per distinct reason rather than on every pass.
        self._unschedulable: dict[str, str] = {}
        self._epochs = AssignmentEpochs(state.resource_version, state.pods())
        # Terminating namespaces whose "still waiting" Warning was given.
        self._stuck_reported: set[str] = set()
        # Pending pods and node sums, moved by each change (master/scheduler/pod_index.py).
        nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
        self._pod_index = PodIndex(nodes, state.pods())
        state.subscribe(self._pod_index.on_change)
        # Each owner's pods counted by template (master/controllers/owner_counts.py).
        self._owner_counts = OwnerCounts(state.pods())
        state.subscribe(self._owner_counts.on_change)
        state.subscribe(self._on_change)

    def _put_status(self, planned: StoredObject) -> None:
        """A controller's write of the object's status (as kube-controller-manager's)."""
        self._state.put_by(CONTROLLER_MANAGER, planned, "status")

    # -- triggers -----------------------------------------------------------------

    def _on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        ns = obj.meta.namespace
        if isinstance(obj, Deployment):
            self._dirty_deployments.add((ns, obj.meta.name))
        elif isinstance(obj, StatefulSet):
            self._dirty_statefulsets.add((ns, obj.meta.name))
        elif isinstance(obj, Pod):
            if obj.owner.startswith(STATEFULSET_OWNER):
                self._dirty_statefulsets.add((ns, obj.owner.removeprefix(STATEFULSET_OWNER)))
            elif obj.owner:
                self._dirty_deployments.add((ns, obj.owner))
            if not obj.node_name or deleted:
                self._schedule_needed = True
        elif isinstance(obj, Namespace):
            pass
        elif isinstance(obj, Node):
            self._node_watch.touch(obj.meta.name)
            if deleted:
                # Only once the deletion is committed: a failed delete keeps the lease.
                self._leases.forget(obj.meta.name)
                self.read_backlog.forget(obj.meta.name)
            self._schedule_needed = True
        else:
            return
        self._wake.set()

    def poke(self) -> None:
        """Ask for a pass soon (e.g. after a heartbeat revived a node)."""
        self._wake.set()

    def delete_pod(
        self, name: str, reason: str, message: str, namespace: str = DEFAULT_NAMESPACE
    ) -> bool:
        """A user's `delete pod`: graceful stop; its deployment makes a replacement."""
        pod = self._state.pod(name, namespace)
        if pod is None:
            return False
        self._request_deletion(pod, reason, message)
        return True

    def forget_node(self, name: str) -> bool:
        """A user's `delete node`: the node and every pod bound to it are forgotten."""
        if self._state.remove("Node", name) is None:
            return False
        for pod in self._state.pods_on_node(name):
            self._state.remove("Pod", pod.meta.name, pod.meta.namespace)
        self._state.record_event("Node", name, "RemovingNode", f"node {name} was deleted")
        return True

    def start_grace(self) -> None:
        """Give every known node time to be heard from (at master start, after a stall)."""
        until = self._clock.monotonic() + max(
            self._health.reconnect_grace, self._health.lease_seconds
        )
        for node in self._state.objects("Node"):
            self._leases.grant(node.meta.name, until, self._health.lease_seconds)

    def session_ended(self, node: str) -> bool:
        """A node's session stream ended: whether it counts against the node (then its
        end is recorded in the lease table and the caller marks the node lost), or was
        excused as part of a mass loss (master/controllers/session_loss.py)."""
        mono = self._clock.monotonic()
        verdict = self._session_loss.session_ended(mono, self._state.count("Node"))
        if isinstance(verdict, Opened):
            self.start_grace()
            self._state.record_event(
                "Cluster", "nodes", "MassSessionLoss", verdict.message, "Warning"
            )
        if not isinstance(verdict, Counted):
            return False
        self._leases.session_ended(node, mono)  # (not recorded while the node runs on a grant)
        return True

    def set_reachability(self, reachability: Reachability) -> None:
        self._reachability = reachability

    # -- the loop -----------------------------------------------------------------

    async def run(self) -> None:
        lease_tick = min(0.25, self._lease_seconds / 4)
        last_resync = self._clock.monotonic()
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel that
            # arrives as its timeout fires, and the loop would then outlive the master's stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lease_tick):
                    await self._wake.wait()
            self._wake.clear()
            if self._clock.monotonic() - last_resync >= self._resync_seconds:
                last_resync = self._clock.monotonic()
                self._dirty_deployments.update(
                    (d.meta.namespace, d.meta.name) for d in self._state.objects("Deployment")
                )
                self._dirty_statefulsets.update(
                    (s.meta.namespace, s.meta.name) for s in self._state.objects("StatefulSet")
                )
                self._schedule_needed = True
                self._full_node_check = True
            # The pass runs in steps, the loop free between two (heartbeats, API calls,
            # the agents' streams): `held` is the time the pass itself held it.
            held = 0.0
            try:
                steps = self._tick_steps()
                while True:
                    started = self._clock.monotonic()
                    more = next(steps, None) is not None
                    held += self._clock.monotonic() - started
                    if not more:
                        break
                    await self._give_way()
            except Exception:
                log.exception("controller pass failed; retrying on the next pass")
            rest = rest_after_pass(held)
            if rest > 0:
                await self._clock.sleep(rest)

    async def _give_way(self) -> float:
        """Between two steps of a pass: the loop's turn (everything ready runs, the agents'
        streams too: master/grpc_wakeups.py); the seconds the pass slept, none.

        A pass used to wait here, up to the rest it owed, while no heartbeat was read
        (read_pause.py, built before the wake-up socket was found to be why the streams
        went unread). With the drain the loop reads them at every turn; the wait no longer
        found a starved read but the fleet's own quiet spells (40 s heartbeat plans: no
        beat for a second or more while the loop was busy with status reports), and slept
        the pass 0-11.6 s of a 5,000-node apply's binding for nothing (bench README,
        issue 15)."""
        await asyncio.sleep(0)
        return 0.0

    def queue_depths(self) -> dict[str, int]:
        """Work waiting for the next pass, per controller (the scheduler's is pending pods)."""
        return {
            "deployment": len(self._dirty_deployments),
            "statefulset": len(self._dirty_statefulsets),
        }

    def tick(self) -> None:
        """One turn of the loop: notice a stall of the master itself, then a pass."""
        for _ in self._tick_steps():
            pass

    def _tick_steps(self) -> Iterator[bool]:
        """`tick` in steps: the loop may run other work where it yields (run() lets it)."""
        now = self._clock.monotonic()
        if self._last_tick is not None and stalled(self._last_tick, now, self._health):
            self._after_stall(now - self._last_tick)
        self._last_tick = now
        closed = self._session_loss.check(now, self._state.count("Node"))
        if closed is not None:
            self._state.record_event("Cluster", "nodes", "MassSessionLossOver", closed.message)
        yield from self._pass_steps()
        # A long step is a stall too: no heartbeat was read while it ran.
        self._last_tick = self._clock.monotonic()

    def _after_stall(self, gap: float) -> None:
        self.start_grace()
        self._full_node_check = True
        self._state.record_event(
            "Cluster",
            "nodes",
            "MasterStalled",
            f"the master's loop did not run for {gap:.1f}s; every node has "
            f"{max(self._health.reconnect_grace, self._health.lease_seconds):g}s to be heard "
            f"from before any is judged",
            "Warning",
        )

    def run_pass(self) -> None:
        for _ in self._pass_steps():
            pass

    def _pass_steps(self) -> Iterator[bool]:
        """A pass, yielding between controllers and between slices of the two that can be
        long (the deployments' pod creations, the scheduler's placements): at 1,000 nodes
        a pass placing 2,000 pods held the master's loop for 350 ms and more in one piece,
        every heartbeat and API call waiting behind it. Each step is short; the loop runs
        whatever came meanwhile before the next (state read afresh where it matters)."""
        with timed(RECONCILE.labels("nodes")):
            self._check_nodes()
        yield True
        with timed(RECONCILE.labels("deployment")):
            yield from self._reconcile_deployments()
        yield True
        with timed(RECONCILE.labels("statefulset")):
            self._reconcile_statefulsets()
        if self._schedule_needed:
            self._schedule_needed = False
            yield True
            with timed(RECONCILE.labels("scheduler")):
                yield from self._schedule_pending()
        with timed(RECONCILE.labels("namespace")):
            self._reconcile_namespaces()
        self._collect_orphans()

    # -- 0. namespaces: a default ServiceAccount each; Terminating ones emptied ---------

    def _reconcile_namespaces(self) -> None:
        now = self._clock.now()
        for ns in self._state.objects("Namespace"):
            if not isinstance(ns, Namespace):
                continue
            name = ns.meta.name
            if ns.phase != TERMINATING:
                has_account = self._state.get("ServiceAccount", "default", name) is not None
                contents = NamespaceContents(has_default_account=has_account)
            else:
                contents = NamespaceContents(
                    pods=tuple(self._state.pods(name)),
                    others=tuple(
                        (kind, o.meta.name)
                        for kind in KINDS
                        if kind != "Pod" and is_namespaced(kind)
                        for o in self._state.objects(kind, name)
                    ),
                )
            stuck = name in self._stuck_reported
            for action in reconcile_namespace(ns, contents, now, stuck):
                self._execute_namespace_action(ns, action)

    def _execute_namespace_action(self, ns: Namespace, action: NamespaceAction) -> None:
        name = ns.meta.name
        if isinstance(action, CreateDefaultAccount):
            self._state.put(default_account(name))
        elif isinstance(action, StopPod):
            pod = self._state.pod(action.name, name)
            if pod is not None:
                self._request_deletion(pod, "Killing", f"its namespace {name} is being deleted")
        elif isinstance(action, DeleteObject):
            gone = self._state.remove(action.kind, action.name, name)
            if isinstance(gone, PersistentVolumeClaim) and gone.volume_name:
                pv = self._state.get("PersistentVolume", gone.volume_name)
                if isinstance(pv, PersistentVolume):
                    self._state.put(replace(pv, phase="Released"))
        elif isinstance(action, ReportStuck):
            self._stuck_reported.add(name)
            self._state.record_event(
                "Namespace", name, "NamespaceDeletionWaiting", action.message, "Warning"
            )
        elif isinstance(action, RemoveNamespace):
            self._stuck_reported.discard(name)
            if self._state.remove("Namespace", name) is not None:
                self._state.record_event(
                    "Namespace", name, "Deleted", f"namespace {name} and all it held are gone"
                )

    # -- 1. nodes -----------------------------------------------------------------

    def _check_nodes(self) -> None:
        mono = self._clock.monotonic()
        leases, health, watch = self._leases, self._health, self._node_watch
        watch.touch_all(leases.take_touched())
        if self._full_node_check:
            # At start, after a stall, on every resync: every node, whatever the triggers
            # said (a missed one costs at most one resync period, never a node's fate).
            self._full_node_check = False
            watch.touch_all(n.meta.name for n in self._state.objects("Node"))

        held = self.loop_held
        # Once per pass: how late the fleet's beats are read now (0: not behind).
        backlog = self.read_backlog.backlog(mono).excuse
        READ_BACKLOG.set(backlog)

        def until_of(name: str) -> float | None:
            last_seen = leases.last_seen(name)
            until = alive_until(
                last_seen,
                leases.lease_of(name) or health.lease_seconds,
                leases.ended_at(name),
                health.session_grace,
            )
            if until is None or leases.ended_at(name) is not None:
                return until  # an ended session is judged by its own grace, unexcused
            return until + max(held.held_between(last_seen, mono), backlog)

        # Only the nodes touched, due or unwell are looked at (master/controllers/
        # node_watch.py); every other node is Ready and alive, and only counted.
        judged: list[Node] = []
        for name in watch.take(mono, until_of):
            n = self._state.get("Node", name)
            if not isinstance(n, Node):
                watch.forget(name)
                continue
            until = until_of(name)
            if n.status.ready and until is not None and mono <= until:
                watch.healthy(name, until)
            else:
                watch.unwell(name)
                judged.append(n)
        healthy = self._state.count("Node") - len(judged)
        signals = {
            n.meta.name: NodeSignals(
                last_seen=leases.last_seen(n.meta.name),
                granted=leases.granted(n.meta.name),
                goodbye_at=leases.goodbye_at(n.meta.name),
                answering=self._reachability.answering(n.meta.name),
                lease_seconds=leases.lease_of(n.meta.name),
                session_ended_at=leases.ended_at(n.meta.name),
                held=held.held_between(leases.last_seen(n.meta.name), mono),
                backlog=backlog,
            )
            for n in judged
        }
        pods = {n.meta.name: self._state.pods_on_node(n.meta.name) for n in judged}
        now = Moment(self._clock.now(), mono)
        actions = reconcile_nodes(
            judged, signals, pods, now, health, self._paused, healthy, self._lease_evictions
        )
        for action in actions:
            self._execute_node_action(action, now.wall)

    def _execute_node_action(self, action: NodeAction, now: float) -> None:
        if isinstance(action, SetNodeCondition):
            node = self._state.get("Node", action.node)
            if not isinstance(node, Node):
                return
            reason = REASONS[action.condition]
            ready = action.condition == "Ready"
            self._put_status(
                apply_transition(node, NodeTransition(ready, reason, action.message), now)
            )
            type_ = "Normal" if ready else "Warning"
            self._state.record_event("Node", action.node, reason, action.message, type_)
            NODE_TRANSITIONS.labels(action.condition).inc()
        elif isinstance(action, MarkPodNotReady):
            ns, name = split_ref(action.pod)
            pod = self._state.pod(name, ns)
            if pod is not None and pod.status.ready:
                status = replace(pod.status, ready=False, reason="NodeNotReady")
                self._put_status(replace(pod, status=status))
        elif isinstance(action, EvictPod):
            ns, name = split_ref(action.pod)
            if self._state.remove("Pod", name, ns) is None:
                return
            PODS_EVICTED.inc()
            if action.stopping:
                return
            self._state.record_event(
                "Pod",
                name,
                "Rescheduled",
                f"pod {name} was lost with NotReady node {action.node}; "
                f"replacing it on a healthy node",
                "Warning",
                namespace=ns,
            )
        elif isinstance(action, SetEvictionRate):
            reason = "EvictionRateLimited" if action.slow else "EvictionRateRestored"
            type_ = "Warning" if action.slow else "Normal"
            self._state.record_event("Cluster", "nodes", reason, action.message, type_)
        elif isinstance(action, SetEvictionsPaused):
            self._paused = action.paused
            reason = "EvictionsPaused" if action.paused else "EvictionsResumed"
            type_ = "Warning" if action.paused else "Normal"
            self._state.record_event("Cluster", "nodes", reason, action.message, type_)

    # -- 2. deployments -------------------------------------------------------------

    def _reconcile_deployments(self) -> Iterator[bool]:
        dirty, self._dirty_deployments = self._dirty_deployments, set()
        started = time.thread_time()
        # Sized by the cluster: fewer, fuller passes, one message a node each (deployment.py).
        burst = burst_replicas(self._state.count("Node"))
        for ns, name in dirty:
            dep = self._state.get("Deployment", name, ns)
            if isinstance(dep, Deployment):
                # Nearly always only the status is due (a pod reported): from the counts,
                # without a walk of every pod of the deployment.
                steady = steady_status(dep, self._owner_counts.counts(ns, name))
                if steady is not None:
                    if dep.status != steady:
                        self._put_status(replace(dep, status=steady))
                    continue
            pods = self._state.pods_of_owner(name, ns)
            if not isinstance(dep, Deployment):
                # Deleted deployment: its pods go too.
                for pod in pods:
                    self._request_deletion(pod, "Killing", "its deployment was deleted")
                continue
            # (Each action made as it is reached: a step ends within a burst's making.)
            for action in deployment_actions(dep, pods, random_suffix, burst):
                if isinstance(action, CreatePod):
                    if self._state.get("Pod", action.pod.meta.name, ns) is not None:
                        # A random suffix met an existing name (Kubernetes' AlreadyExists):
                        # never overwrite a pod; the next pass draws a new suffix.
                        self._dirty_deployments.add((ns, name))
                        self._wake.set()
                        continue
                    self._state.put_by(CONTROLLER_MANAGER, action.pod)
                    self._state.queue_event(
                        "Deployment", name, action.reason, action.message, namespace=ns
                    )
                    if step_over(started, time.thread_time()):
                        yield True
                        started = time.thread_time()
                elif isinstance(action, DeletePod):
                    doomed = self._state.pod(action.name, ns)
                    if doomed is not None:
                        self._request_deletion(doomed, action.reason, action.message)
                elif isinstance(action, SetDeploymentStatus) and dep.status != action.status:
                    self._put_status(replace(dep, status=action.status))

    def _reconcile_statefulsets(self) -> None:
        dirty, self._dirty_statefulsets = self._dirty_statefulsets, set()
        for ns, name in dirty:
            sts = self._state.get("StatefulSet", name, ns)
            pods = self._state.pods_of_owner(STATEFULSET_OWNER + name, ns)
            if not isinstance(sts, StatefulSet):
                for pod in pods:
                    self._request_deletion(pod, "Killing", "its statefulset was deleted")
                owned = [
                    c
                    for c in self._state.objects("PersistentVolumeClaim", ns)
                    if isinstance(c, PersistentVolumeClaim)
                ]
                for claim in orphaned_claims(name, owned, self._state.pods(ns)):
                    self._remove_claim(
                        claim,
                        ns,
                        f"delete claim {claim}: statefulset {name} was deleted "
                        f"(whenDeleted: Delete)",
                    )
                continue
            claims = {
                c.meta.name: c
                for c in self._state.objects("PersistentVolumeClaim", ns)
                if isinstance(c, PersistentVolumeClaim)
            }
            now = self._clock.now()
            for action in reconcile_statefulset(sts, pods, claims, now):
                self._execute_statefulset_action(sts, action)

    def _execute_statefulset_action(self, sts: StatefulSet, action: StatefulSetAction) -> None:
        name, ns = sts.meta.name, sts.meta.namespace
        if isinstance(action, CreateClaim):
            self._state.put_by(CONTROLLER_MANAGER, action.claim)
            self._state.record_event(
                "StatefulSet", name, action.reason, action.message, namespace=ns
            )
        elif isinstance(action, CreatePod):
            if self._state.get("Pod", action.pod.meta.name, ns) is None:
                self._state.put_by(CONTROLLER_MANAGER, action.pod)
                self._state.record_event(
                    "StatefulSet", name, action.reason, action.message, namespace=ns
                )
        elif isinstance(action, DeletePod):
            doomed = self._state.pod(action.name, ns)
            if doomed is not None:
                self._request_deletion(doomed, action.reason, action.message)
        elif isinstance(action, DeleteClaim):
            if self._remove_claim(action.name, ns, action.message):
                self._state.record_event(
                    "StatefulSet", name, action.reason, action.message, namespace=ns
                )
        elif isinstance(action, SetClaimOwner):
            self._state.put_by(CONTROLLER_MANAGER, action.claim)
        elif isinstance(action, SetStatefulSetStatus):
            self._put_status(replace(sts, status=action.status))

    def _remove_claim(self, name: str, ns: str, message: str) -> bool:
        """Delete a claim a statefulset's policy gives up; its volume is Released (and, by
        its reclaim policy, removed from its node)."""
        claim = self._state.remove("PersistentVolumeClaim", name, ns)
        if not isinstance(claim, PersistentVolumeClaim):
            return False
        pv = self._state.get("PersistentVolume", claim.volume_name) if claim.volume_name else None
        if isinstance(pv, PersistentVolume):
            self._state.put(replace(pv, phase="Released"))
        self._state.record_event("PersistentVolumeClaim", name, "Deleted", message, namespace=ns)
        return True

    def _request_deletion(self, pod: Pod, reason: str, message: str) -> None:
        if pod.deletion_requested_at:
            return
        node = self._state.get("Node", pod.node_name) if pod.node_name else None
        if not isinstance(node, Node) or not node.status.ready:
            # Nobody runs it (or its node cannot confirm): forget it now.
            self._state.remove("Pod", pod.meta.name, pod.meta.namespace)
        else:
            self._state.put(replace(pod, deletion_requested_at=self._clock.now()))
        self._state.record_event(
            "Pod", pod.meta.name, reason, message, namespace=pod.meta.namespace
        )

    # -- 3. scheduling ---------------------------------------------------------------

    def record_claim_disk(self, node: str, disk: ClaimDisk | None) -> None:
        """A node's report of its claim disk's room (None: it does not enforce sizes). A
        first report since the master started lets pods waiting for it be placed now."""
        first = node not in self._claim_disks
        self._claim_disks[node] = disk
        if first:
            self._schedule_needed = True
            self._wake.set()

    def _claim_room_unknown(self, node: str) -> bool:
        """No report from `node` yet, this soon after the master started (its agent reports
        as its session starts): its room may be anything. A node that never reports (an
        agent of an older version) is taken as before once CLAIM_REPORT_GRACE is over."""
        recent = self._clock.monotonic() - self._started < CLAIM_REPORT_GRACE
        return recent and node not in self._claim_disks

    def _schedule_pending(self) -> Iterator[bool]:
        # Kept by the index, not walked from every pod: a pass costs the pending pods
        # and the nodes changed since the last one.
        if not self._pod_index.any_pending():
            return
        # The changed nodes' infos first, in steps of their own (after a burst's binding
        # every node changed); the pending pods are read after them, as they are then.
        started = time.thread_time()
        for _ in self._pod_index.make_infos():
            if step_over(started, time.thread_time()):
                yield True
                started = time.thread_time()
        pending = self._pod_index.pending()
        if not pending:
            return
        pending.sort(key=lambda p: (p.meta.created_at, p.meta.name))
        infos = self._pod_index.node_infos()
        with_claims = [p for p in pending if p.spec.claim_names()]
        if with_claims:
            infos = self._schedule_with_claims(with_claims, self._state.pods(), infos)
        plain = [p for p in pending if not p.spec.claim_names()]
        # One decision at a time, the loop free whenever a step has had its turn
        # (master/controllers/slicing.py); the scheduler keeps its columns across.
        decisions = schedule_each(plain, dict(infos), percentage_of_nodes_to_score=self._percentage)
        yield True  # the sort and the lists took a step of their own
        started = time.thread_time()
        placed: list[tuple[Pod, str]] = []
        for pod, result in decisions:
            if isinstance(result, Placement):
                placed.append((pod, result.node_name))
            else:
                self._mark_unschedulable(pod, result.message)
                series.pod_unschedulable()
            if step_over(started, time.thread_time()):
                yield True
                started = time.thread_time()
        # Bound once all are decided, each node's pods one after another: a node's session
        # then sends them in one message and its agent reports them in one. Bound as they
        # were decided, a burst spread over the nodes reached each node one pod at a time
        # (50,000 pods on 5,000 nodes: ~10 messages a node each way, each read and written
        # by the master's loop, where one does).
        # A step ends between two nodes only, or a node's pods went as two messages.
        placed.sort(key=lambda decided: decided[1])
        for i, (pod, node_name) in enumerate(placed):
            current = self._still_placeable(pod, node_name)
            if current is not None:
                self._bind(current, node_name)
                series.pod_scheduled(current.meta.created_at, self._clock.now())
            node_done = i + 1 == len(placed) or placed[i + 1][1] != node_name
            if node_done and step_over(started, time.thread_time()):
                yield True
                started = time.thread_time()

    def _still_placeable(self, pod: Pod, node_name: str) -> Pod | None:
        """The pod as it is now, if it still waits unbound and the node is still there and
        Ready (the loop ran other work since its placement was decided); None if not, and
        the pass after this one places it again, from fresh state."""
        current = self._state.pod(pod.meta.name, pod.meta.namespace)
        node = self._state.get("Node", node_name)
        fine = (
            current is not None
            and current.meta.uid == pod.meta.uid
            and not current.node_name
            and not current.deletion_requested_at
            and isinstance(node, Node)
            and node.status.ready
            and not node.unschedulable
        )
        if not fine:
            self._schedule_needed = True
            self._wake.set()
            return None
        return current

    def _schedule_with_claims(
        self, pending: list[Pod], pods: list[Pod], infos: dict[str, NodeInfo]
    ) -> dict[str, NodeInfo]:
        """Carries out place_pods_with_claims' decisions: claims, volumes, bindings, events."""
        claims = [
            c
            for c in self._state.objects("PersistentVolumeClaim")
            if isinstance(c, PersistentVolumeClaim)
        ]
        pvs = [
            v for v in self._state.objects("PersistentVolume") if isinstance(v, PersistentVolume)
        ]
        infos = {
            name: info.with_claim_room(
                claim_room(self._claim_disks.get(name), pvs, name, claims),
                self._claim_room_unknown(name),
            )
            for name, info in infos.items()
        }
        decisions, infos = place_pods_with_claims(
            pending, pods, claims, infos, self._clock.now(), self._percentage
        )
        for decision in decisions:
            if isinstance(decision, Waiting):
                self._mark_unschedulable(decision.pod, decision.message)
                continue
            binding, node = decision.binding, decision.node
            for claim in binding.claims:
                self._state.put(claim)
                self._state.record_event(
                    "PersistentVolumeClaim",
                    claim.meta.name,
                    "Bound",
                    f"bound to volume {claim.volume_name} on node {claim.node_name} "
                    f"(its first consumer, pod {binding.pod.meta.name}, was scheduled there)",
                    namespace=claim.meta.namespace,
                )
            for volume in binding.volumes:
                self._state.put(volume)
            self._bind(binding.pod, node)
            series.pod_scheduled(binding.pod.meta.created_at, self._clock.now())
        return infos

    def _bind(self, pod: Pod, node_name: str) -> None:
        self._unschedulable.pop(key_of(pod), None)
        status = PodStatus(reason="ContainerCreating")
        self._state.put(evolve(pod, node_name=node_name, status=status, epoch=self._epochs.next()))
        self._state.queue_event(
            "Pod",
            pod.meta.name,
            "Scheduled",
            f"assigned {pod.meta.name} to {node_name}",
            namespace=pod.meta.namespace,
            writer=SCHEDULER,
        )

    def _mark_unschedulable(self, pod: Pod, message: str) -> None:
        if self._unschedulable.get(key_of(pod)) == message:
            return
        self._unschedulable[key_of(pod)] = message
        status = replace(pod.status, reason=POD_UNSCHEDULABLE, message=message)
        self._state.put_by(SCHEDULER, replace(pod, status=status), "status")
        self._state.record_event(
            "Pod",
            pod.meta.name,
            "FailedScheduling",
            message,
            "Warning",
            namespace=pod.meta.namespace,
            writer=SCHEDULER,
        )

    # -- 4. orphans ------------------------------------------------------------------

    def _collect_orphans(self) -> None:
        for key in list(self._unschedulable):
            if self._state.get_key("Pod", key) is None:
                del self._unschedulable[key]
