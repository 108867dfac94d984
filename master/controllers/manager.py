"""Runs the controllers against the ClusterState: the master's reconcile loop.

State changes mark work (a deployment to reconcile, pods to schedule, nodes to
check) through a state listener; one asyncio task drains the work in passes:
  1. node leases -> Ready/NotReady transitions, eviction of lost nodes' pods;
  2. dirty deployments -> reconcile_deployment -> create/delete pods, status;
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
from dataclasses import replace

from kernel.clock import Clock
from master.controllers.actions import CreatePod, DeletePod, SetDeploymentStatus
from master.controllers.deployment import reconcile_deployment
from master.controllers.epochs import AssignmentEpochs
from master.controllers.naming import random_suffix
from master.controllers.nodes import (
    LeaseTable,
    apply_transition,
    reconcile_node_lease,
    should_evict,
)
from master.model import Deployment, Node, Pod, PodStatus, StoredObject
from master.scheduler import Placement, build_node_infos, schedule_batch
from master.state import ClusterState

log = logging.getLogger(__name__)


class ControllerManager:
    def __init__(
        self,
        state: ClusterState,
        clock: Clock,
        leases: LeaseTable,
        lease_seconds: float = 3.0,
        eviction_timeout: float = 0.0,
        resync_seconds: float = 5.0,
    ) -> None:
        self._state = state
        self._clock = clock
        self._leases = leases
        self._lease_seconds = lease_seconds
        self._eviction_timeout = eviction_timeout
        self._resync_seconds = resync_seconds
        self._dirty_deployments: set[str] = set()
        self._schedule_needed = True
        self._wake = asyncio.Event()
        # Last FailedScheduling message per pod, so a stuck pod is reported once
        # per distinct reason rather than on every pass.
        self._unschedulable: dict[str, str] = {}
        self._epochs = AssignmentEpochs(state.resource_version, state.pods())
        state.subscribe(self._on_change)

    # -- triggers -----------------------------------------------------------------

    def _on_change(self, kind: str, obj: StoredObject, deleted: bool) -> None:
        if isinstance(obj, Deployment):
            self._dirty_deployments.add(obj.meta.name)
        elif isinstance(obj, Pod):
            if obj.owner:
                self._dirty_deployments.add(obj.owner)
            if not obj.node_name or deleted:
                self._schedule_needed = True
        elif isinstance(obj, Node):
            if deleted:
                # Only once the deletion is committed: a failed delete keeps the lease.
                self._leases.forget(obj.meta.name)
            self._schedule_needed = True
        else:
            return
        self._wake.set()

    def poke(self) -> None:
        """Ask for a pass soon (e.g. after a heartbeat revived a node)."""
        self._wake.set()

    def delete_pod(self, name: str, reason: str, message: str) -> bool:
        """A user's `delete pod`: graceful stop; its deployment makes a replacement."""
        pod = self._state.pod(name)
        if pod is None:
            return False
        self._request_deletion(pod, reason, message)
        return True

    def forget_node(self, name: str) -> bool:
        """A user's `delete node`: the node and every pod bound to it are forgotten."""
        if self._state.remove("Node", name) is None:
            return False
        for pod in self._state.pods_on_node(name):
            self._state.remove("Pod", pod.meta.name)
        self._state.record_event("Node", name, "RemovingNode", f"node {name} was deleted")
        return True

    def start_grace(self) -> None:
        """Give every known node a fresh lease from now (called once at master start)."""
        now = self._clock.monotonic()
        for node in self._state.objects("Node"):
            self._leases.renew(node.meta.name, now)

    # -- the loop -----------------------------------------------------------------

    async def run(self) -> None:
        lease_tick = min(0.25, self._lease_seconds / 4)
        last_resync = self._clock.monotonic()
        while True:
            # asyncio.timeout, not wait_for: in Python 3.11 wait_for swallows a cancel
            # that lands as the event is set, and the loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lease_tick):
                    await self._wake.wait()
            self._wake.clear()
            if self._clock.monotonic() - last_resync >= self._resync_seconds:
                last_resync = self._clock.monotonic()
                self._dirty_deployments.update(
                    d.meta.name for d in self._state.objects("Deployment")
                )
                self._schedule_needed = True
            try:
                self.run_pass()
            except Exception:
                log.exception("controller pass failed; retrying on the next pass")

    def run_pass(self) -> None:
        self._check_nodes()
        self._reconcile_deployments()
        if self._schedule_needed:
            self._schedule_needed = False
            self._schedule_pending()
        self._collect_orphans()

    # -- 1. nodes -----------------------------------------------------------------

    def _check_nodes(self) -> None:
        mono = self._clock.monotonic()
        now = self._clock.now()
        for obj in self._state.objects("Node"):
            assert isinstance(obj, Node)
            node = obj
            t = reconcile_node_lease(
                node, self._leases.last_seen(node.meta.name), mono, self._lease_seconds
            )
            if t is not None:
                node = self._state.put(apply_transition(node, t, now))
                self._state.record_event(
                    "Node", node.meta.name, t.reason, t.message, "Normal" if t.ready else "Warning"
                )
                if not t.ready:
                    self._mark_pods_not_ready(node)
            if not node.status.ready and should_evict(node, now, self._eviction_timeout):
                self._evict_pods(node)

    def _mark_pods_not_ready(self, node: Node) -> None:
        for pod in self._state.pods_on_node(node.meta.name):
            if pod.status.ready:
                status = replace(pod.status, ready=False, reason="NodeNotReady")
                self._state.put(replace(pod, status=status))

    def _evict_pods(self, node: Node) -> None:
        for pod in self._state.pods_on_node(node.meta.name):
            self._state.remove("Pod", pod.meta.name)
            if pod.deletion_requested_at:
                continue
            self._state.record_event(
                "Pod",
                pod.meta.name,
                "Rescheduled",
                f"pod {pod.meta.name} was lost with NotReady node {node.meta.name}; "
                f"replacing it on a healthy node",
                "Warning",
            )

    # -- 2. deployments -------------------------------------------------------------

    def _reconcile_deployments(self) -> None:
        dirty, self._dirty_deployments = self._dirty_deployments, set()
        for name in dirty:
            dep = self._state.get("Deployment", name)
            pods = self._state.pods_of_owner(name)
            if not isinstance(dep, Deployment):
                # Deleted deployment: its pods go too.
                for pod in pods:
                    self._request_deletion(pod, "Killing", "its deployment was deleted")
                continue
            for action in reconcile_deployment(dep, pods, random_suffix):
                if isinstance(action, CreatePod):
                    if self._state.get("Pod", action.pod.meta.name) is not None:
                        # A random suffix met an existing name (Kubernetes' AlreadyExists):
                        # never overwrite a pod; the next pass draws a new suffix.
                        self._dirty_deployments.add(name)
                        self._wake.set()
                        continue
                    self._state.put(action.pod)
                    self._state.record_event("Deployment", name, action.reason, action.message)
                elif isinstance(action, DeletePod):
                    doomed = self._state.pod(action.name)
                    if doomed is not None:
                        self._request_deletion(doomed, action.reason, action.message)
                elif isinstance(action, SetDeploymentStatus) and dep.status != action.status:
                    self._state.put(replace(dep, status=action.status))

    def _request_deletion(self, pod: Pod, reason: str, message: str) -> None:
        if pod.deletion_requested_at:
            return
        node = self._state.get("Node", pod.node_name) if pod.node_name else None
        if not isinstance(node, Node) or not node.status.ready:
            # Nobody runs it (or its node cannot confirm): forget it now.
            self._state.remove("Pod", pod.meta.name)
        else:
            self._state.put(replace(pod, deletion_requested_at=self._clock.now()))
        self._state.record_event("Pod", pod.meta.name, reason, message)

    # -- 3. scheduling ---------------------------------------------------------------

    def _schedule_pending(self) -> None:
        pods = self._state.pods()
        pending = [p for p in pods if not p.node_name and not p.deletion_requested_at]
        if not pending:
            return
        pending.sort(key=lambda p: (p.meta.created_at, p.meta.name))
        nodes = [n for n in self._state.objects("Node") if isinstance(n, Node)]
        infos = build_node_infos(nodes, pods)
        results, _ = schedule_batch(pending, infos)
        for pod in pending:
            result = results[pod.meta.name]
            if isinstance(result, Placement):
                self._bind(pod, result.node_name)
            else:
                self._mark_unschedulable(pod, result.message)

    def _bind(self, pod: Pod, node_name: str) -> None:
        self._unschedulable.pop(pod.meta.name, None)
        status = PodStatus(reason="ContainerCreating")
        self._state.put(replace(pod, node_name=node_name, status=status, epoch=self._epochs.next()))
        self._state.record_event(
            "Pod", pod.meta.name, "Scheduled", f"assigned {pod.meta.name} to {node_name}"
        )

    def _mark_unschedulable(self, pod: Pod, message: str) -> None:
        if self._unschedulable.get(pod.meta.name) == message:
            return
        self._unschedulable[pod.meta.name] = message
        status = replace(pod.status, reason="Unschedulable", message=message)
        self._state.put(replace(pod, status=status))
        self._state.record_event("Pod", pod.meta.name, "FailedScheduling", message, "Warning")

    # -- 4. orphans ------------------------------------------------------------------

    def _collect_orphans(self) -> None:
        for name in list(self._unschedulable):
            if self._state.pod(name) is None:
                del self._unschedulable[name]
