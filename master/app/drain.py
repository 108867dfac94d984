"""Cordon, uncordon and drain: taking a machine out of service without an outage.

`cordon` marks a node unschedulable (the scheduler's NodeUnschedulable filter
then places nothing new there); `uncordon` lifts it. `drain` cordons and then
evicts the node's pods in steps that keep every deployment available — the
budget Kubernetes users get from a PodDisruptionBudget, taken here from the
deployment's own rolling-update `maxUnavailable` (at least 1, so a drain always
progresses): a pod is evicted only while its deployment has no more than that
many replicas missing, so the replacement of the first evicted pod is ready
elsewhere before the next one goes. A pod that cannot move is named with the
reason instead of being evicted into an empty or missing home.

`plan_drain` decides (pure, unit tested); `drain_node` runs one step of it as
one durable commit and says what is left, so a caller (the CLI) repeats the
call until nothing is left or its timeout ends. As with kubectl, a node with a
pod that cannot move is cordoned but nothing on it is evicted.

`evict_pod` is the same judgement for one pod, asked by the Kubernetes API's Eviction
subresource (`kubectl drain` evicts pod by pod): the deployment's budget, the claims
that pin a pod to its node. pinnace has no PodDisruptionBudget objects; the budget is
the one above.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from master.app.delete import NodeLifecycle, set_stop_grace
from master.app.errors import commit, not_found
from master.controllers.rolling import surge_and_unavailable
from master.model import STATEFULSET_OWNER, Deployment, Node, Pod, pod_ref, ref, split_ref
from master.state import ClusterState


@dataclass(frozen=True, slots=True)
class Waiting:
    """A pod that stays for now, and why."""

    pod: str
    reason: str


@dataclass(frozen=True, slots=True)
class DrainPlan:
    # Evict these now.
    evict: tuple[str, ...]
    # Movable, but evicting them now would break their deployment's budget.
    waiting: tuple[Waiting, ...]
    # Cannot move at all (the drain does not finish while they are there).
    blocked: tuple[Waiting, ...]
    # Already stopping: the drain is done when they are gone.
    terminating: tuple[str, ...]

    @property
    def done(self) -> bool:
        return not (self.evict or self.waiting or self.blocked or self.terminating)


def _missing_replicas(dep: Deployment, pods: Iterable[Pod]) -> int:
    """How many of the deployment's desired replicas are not ready (and staying) now."""
    ready = sum(
        1
        for p in pods
        if p.owner == dep.meta.name
        and p.meta.namespace == dep.meta.namespace
        and p.status.ready
        and not p.deletion_requested_at
    )
    return max(0, dep.replicas - ready)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What may happen to one pod of a node being emptied now: `evict`, `wait` (its
    deployment's budget is spent), `blocked` (it cannot move at all) or `terminating`
    (already stopping); `reason` says why for the last three."""

    action: Literal["evict", "wait", "blocked", "terminating"]
    reason: str = ""


def judge_pod(
    pod: Pod,
    all_pods: Sequence[Pod],
    deployments: Mapping[str, Deployment],
    granted: Mapping[str, int] | None = None,
    unmanaged_blocked: bool = True,
) -> Verdict:
    """Whether `pod` may be evicted now (`granted`: evictions of each deployment, by `ref`,
    already granted but not yet visible in `all_pods`). `unmanaged_blocked`: a pod no
    Deployment or StatefulSet manages cannot move (pinnace drain); the Eviction API lets
    it go (kubectl drain asks for that only with --force)."""
    if pod.deletion_requested_at:
        return Verdict("terminating")
    claims = pod.spec.claim_names()
    if claims:
        return Verdict(
            "blocked",
            f"its claim {', '.join(claims)} keeps its data on this node: evicted, "
            f"it could run nowhere else (scale its workload down instead)",
        )
    if pod.owner.startswith(STATEFULSET_OWNER):
        return Verdict("evict")
    dep = deployments.get(ref(pod.meta.namespace, pod.owner)) if pod.owner else None
    if dep is None:
        if not unmanaged_blocked:
            return Verdict("evict")
        return Verdict("blocked", "not managed by a Deployment: evicting it would lose it for good")
    _, max_unavailable = surge_and_unavailable(dep)
    budget = max(1, max_unavailable)
    owner = ref(dep.meta.namespace, dep.meta.name)
    missing = _missing_replicas(dep, all_pods) + (granted or {}).get(owner, 0)
    # A pod that is not ready is already counted as missing: evicting it
    # takes nothing more away.
    if not pod.status.ready or missing < budget:
        return Verdict("evict")
    return Verdict(
        "wait",
        f"deployment {dep.meta.name} has {missing} of {dep.replicas} replicas "
        f"not ready and may lose at most {budget} at a time",
    )


def plan_drain(
    node: str,
    pods: Iterable[Pod],
    deployments: Mapping[str, Deployment],
) -> DrainPlan:
    """What one drain step of `node` does, given every pod and deployment of the cluster
    (`deployments` by `ref`; pods are named by `pod_ref` in the plan)."""
    all_pods = list(pods)
    evict: list[str] = []
    waiting: list[Waiting] = []
    blocked: list[Waiting] = []
    terminating: list[str] = []
    # Evictions granted this step count against the budget like missing replicas.
    granted: dict[str, int] = {}
    mine = sorted((p for p in all_pods if p.node_name == node), key=pod_ref)
    for pod in mine:
        name = pod_ref(pod)
        verdict = judge_pod(pod, all_pods, deployments, granted)
        if verdict.action == "terminating":
            terminating.append(name)
        elif verdict.action == "blocked":
            blocked.append(Waiting(name, verdict.reason))
        elif verdict.action == "wait":
            waiting.append(Waiting(name, verdict.reason))
        else:
            evict.append(name)
            if pod.status.ready and pod.owner and not pod.owner.startswith(STATEFULSET_OWNER):
                owner = ref(pod.meta.namespace, pod.owner)
                granted[owner] = granted.get(owner, 0) + 1
    return DrainPlan(tuple(evict), tuple(waiting), tuple(blocked), tuple(terminating))


def _node(state: ClusterState, name: str) -> Node:
    node = state.get("Node", name)
    if not isinstance(node, Node):
        raise not_found("Node", name)
    return node


def _set_unschedulable(state: ClusterState, node: Node, value: bool) -> bool:
    """Put the flag; True when it changed (and an event was recorded)."""
    if node.unschedulable == value:
        return False
    state.put(replace(node, unschedulable=value))
    reason, verb = (
        ("NodeNotSchedulable", "cordoned") if value else ("NodeSchedulable", "uncordoned")
    )
    state.record_event("Node", node.meta.name, reason, f"node {node.meta.name} {verb}")
    return True


async def cordon_node(state: ClusterState, name: str, unschedulable: bool) -> bool:
    """Cordon (or uncordon) a node; True when that changed anything. Durable on return."""
    return await commit(state, lambda: _set_unschedulable(state, _node(state, name), unschedulable))


async def drain_node(state: ClusterState, lifecycle: NodeLifecycle, name: str) -> DrainPlan:
    """One drain step: cordon, evict what the budgets allow now; the plan says what is left."""

    def step() -> DrainPlan:
        _set_unschedulable(state, _node(state, name), True)
        deployments = {
            ref(d.meta.namespace, d.meta.name): d
            for d in state.objects("Deployment")
            if isinstance(d, Deployment)
        }
        plan = plan_drain(name, state.pods(), deployments)
        if plan.blocked:
            # As kubectl drain: the node stays cordoned, nothing is evicted, the
            # caller names what cannot move.
            return replace(plan, evict=())
        for pod in plan.evict:
            ns, pod_name = split_ref(pod)
            lifecycle.delete_pod(pod_name, "Evicted", f"evicted to drain node {name}", ns)
        return plan

    return await commit(state, step)


async def evict_pod(
    state: ClusterState,
    lifecycle: NodeLifecycle,
    name: str,
    namespace: str,
    grace_seconds: int | None = None,
    dry_run: bool = False,
) -> Verdict:
    """One pod's eviction (Kubernetes' Eviction API, what `kubectl drain` asks for pod by
    pod): judged as a drain step judges it, with the budget of the pod's deployment, and
    stopped gracefully when the verdict is `evict` (or it is already stopping). A pod no
    controller manages may go: kubectl asks for that only with --force. Durable on return;
    AppError(not_found) for a missing pod."""

    def step() -> Verdict:
        pod = state.pod(name, namespace)
        if pod is None:
            raise not_found("Pod", name)
        deployment = state.get("Deployment", pod.owner, namespace) if pod.owner else None
        deployments = (
            {ref(namespace, pod.owner): deployment} if isinstance(deployment, Deployment) else {}
        )
        siblings = state.pods_of_owner(pod.owner, namespace) if pod.owner else [pod]
        verdict = judge_pod(pod, siblings, deployments, unmanaged_blocked=False)
        if verdict.action in ("evict", "terminating") and not dry_run:
            if grace_seconds is not None:
                set_stop_grace(state, name, namespace, grace_seconds)
            where = f" from node {pod.node_name}" if pod.node_name else ""
            lifecycle.delete_pod(name, "Evicted", f"evicted{where} (Eviction API)", namespace)
        return verdict

    return await commit(state, step)
