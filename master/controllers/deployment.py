"""The deployment controller's decision: replicas and template -> pod actions.

`reconcile_deployment` is pure: given a Deployment and every pod it owns, it
returns what to create, what to delete and the new status. It is level-triggered
(it looks only at the current state, never at what it did before), so running it
again after a crash or on a periodic resync is always safe.

Pods whose template hash matches the current template are "new", the rest "old".
Pods already asked to stop (deletion requested) still hold their place until the
agent confirms they are gone, so a rollout never overshoots its surge.
  * Recreate: delete every old pod, wait until they are gone, then create new ones.
  * RollingUpdate: create new pods while the total stays within replicas+maxSurge;
    delete old pods only while ready pods stay at least replicas-maxUnavailable
    (a new pod counts only once it is ready), deleting not-ready old pods first.
With no old pods left, this is plain scaling: create or delete until the count
matches, deleting the least useful pods first (unscheduled, not running, not
ready, newest), as Kubernetes does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from master.controllers.actions import Action, CreatePod, DeletePod, SetDeploymentStatus
from master.controllers.naming import pod_name, template_hash
from master.controllers.owner_counts import PodCounts, pod_stall
from master.controllers.rolling import surge_and_unavailable
from master.model import Deployment, DeploymentStatus, ObjectMeta, Pod, PodPhase

TEMPLATE_HASH_LABEL = "pod-template-hash"
# At most this many pods created (or deleted) per deployment per pass, like Kubernetes'
# ReplicaSet controller's burstReplicas (500 there): the pods created come back as changes
# and the next pass goes on. One pass creating 10,000 pods held the master's loop for
# seconds, long enough for healthy nodes' heartbeats to go unread (nodes NotReady, pods
# replaced); 500 per pass made 1,000 nodes / 10,000 pods take twice as long (53 s against
# 25 s at 2,000), every pass walking all the pods again.
BURST_REPLICAS = 2000
# ...or, in a cluster of more than BURST_REPLICAS / BURST_PODS_PER_NODE nodes, this many a
# node: what a pass costs beyond its pods is one assignment message a node it gives pods
# to, and one status report back, each read or written by the master's one loop. At 5,000
# nodes, 2,000 a deployment a pass made a 50,000-pod apply five passes of two pods a node
# (~25,000 messages each way; the loop spent more on them than on the pods); sized by the
# cluster it is one pass of ten a node. The pass itself runs in steps (slicing.py), so its
# size no longer holds the loop in one piece as the first pass of 10,000 did.
BURST_PODS_PER_NODE = 2


def burst_replicas(nodes: int) -> int:
    """Pods a pass creates (or deletes) per deployment in a cluster of `nodes` nodes."""
    return max(BURST_REPLICAS, BURST_PODS_PER_NODE * nodes)


def reconcile_deployment(
    dep: Deployment,
    pods: Sequence[Pod],
    new_suffix: Callable[[], str],
    burst: int = BURST_REPLICAS,
) -> list[Action]:
    """Every action `deployment_actions` gives, in its order."""
    return list(deployment_actions(dep, pods, new_suffix, burst))


def deployment_actions(
    dep: Deployment,
    pods: Sequence[Pod],
    new_suffix: Callable[[], str],
    burst: int = BURST_REPLICAS,
) -> Iterator[Action]:
    """The actions, each made when it is asked for: the controller manager executes them
    in steps of its pass (slicing.py), and a burst of 10,000 creations made in one piece
    (a name drawn, a pod and its action built for each) was ~50 ms of the loop, over the
    20 ms a step may take. Still pure: what it gives depends on its arguments alone (it
    reads `pods` once, at its first action), whenever the actions are asked for."""
    current_hash = template_hash(dep.template)
    live = [p for p in pods if not p.deletion_requested_at]
    terminating = [p for p in pods if p.deletion_requested_at]
    new = [p for p in live if p.template_hash == current_hash]
    old = [p for p in live if p.template_hash != current_hash]

    if dep.strategy == "Recreate" and old:
        for p in old:
            yield _delete(p, "Killing", f"recreating {dep.meta.name}: old template")
    elif dep.strategy == "Recreate" and any(p.template_hash != current_hash for p in terminating):
        pass  # old pods still stopping; Recreate waits until they are gone
    elif old:
        yield from _roll(dep, new, old, len(terminating), current_hash, new_suffix, burst)
    else:
        yield from _scale(dep, new, current_hash, new_suffix, burst)

    yield SetDeploymentStatus(dep.meta.name, _status(dep, new, live))


def _roll(
    dep: Deployment,
    new: list[Pod],
    old: list[Pod],
    terminating: int,
    current_hash: str,
    new_suffix: Callable[[], str],
    burst: int,
) -> Iterator[Action]:
    surge, max_unavailable = surge_and_unavailable(dep)
    total = len(new) + len(old) + terminating
    room = min(dep.replicas - len(new), dep.replicas + surge - total)
    labels = _pod_labels(dep, current_hash)
    for _ in range(min(burst, max(0, room))):
        yield _create(dep, labels, current_hash, new_suffix(), "rolling update")

    min_available = dep.replicas - max_unavailable
    ready = sum(1 for p in new + old if p.status.ready)
    # Old pods that are not ready serve no one: removing them costs no availability.
    for pod in [p for p in old if not p.status.ready]:
        yield _delete(pod, "Killing", "rolling update: replacing a pod that is not ready")
    budget = ready - min_available
    ready_old = sorted((p for p in old if p.status.ready), key=_deletion_rank)
    for pod in ready_old[: max(0, budget)]:
        yield _delete(pod, "Killing", "rolling update: replaced by a newer pod")


def _scale(
    dep: Deployment,
    new: list[Pod],
    current_hash: str,
    new_suffix: Callable[[], str],
    burst: int,
) -> Iterator[Action]:
    missing = dep.replicas - len(new)
    if missing > 0:
        why = f"scaling up to {dep.replicas}" if new else f"creating {dep.replicas} replicas"
        labels = _pod_labels(dep, current_hash)
        for _ in range(min(missing, burst)):
            yield _create(dep, labels, current_hash, new_suffix(), why)
    elif missing < 0:
        doomed = sorted(new, key=_deletion_rank)[: min(-missing, burst)]
        for p in doomed:
            yield _delete(p, "Killing", f"scaling down to {dep.replicas}")


def _deletion_rank(pod: Pod) -> tuple[bool, bool, bool, float]:
    """Sort key: the pods best deleted first come first."""
    return (
        bool(pod.node_name),
        pod.status.phase == PodPhase.RUNNING,
        pod.status.ready,
        -pod.meta.created_at,
    )


def _pod_labels(dep: Deployment, hash_: str) -> Mapping[str, str]:
    """The labels of the pods one pass creates: one mapping they all hold (read-only, as
    every object's labels are), not a dict per pod: 184 bytes a pod less retained with two
    template labels, 9 MiB at 50,000 pods."""
    return {**dep.template.labels, TEMPLATE_HASH_LABEL: hash_}


# The annotations of every pod a deployment creates (none): one empty mapping they all
# hold (read-only, as the labels they share), not an empty dict per pod: 64 bytes a pod,
# 3 MiB at 50,000 pods (tests/bench/apply_path.py --memory).
NO_ANNOTATIONS: Mapping[str, str] = {}


def _create(
    dep: Deployment, labels: Mapping[str, str], hash_: str, suffix: str, why: str
) -> CreatePod:
    name = pod_name(dep.meta.name, hash_, suffix)
    meta = ObjectMeta(
        name=name, labels=labels, annotations=NO_ANNOTATIONS, namespace=dep.meta.namespace
    )
    pod = Pod(
        meta=meta,
        spec=dep.template.spec,
        owner=dep.meta.name,
        template_hash=hash_,
    )
    return CreatePod(pod, "SuccessfulCreate", f"created pod {name}: {why}")


def _delete(pod: Pod, reason: str, message: str) -> DeletePod:
    return DeletePod(pod.meta.name, reason, f"stopping pod {pod.meta.name}: {message}")


def stalled_reason(new: list[Pod]) -> str:
    """Why the current template's pods cannot become ready, or "" (the first pod by name
    that cannot: master/controllers/owner_counts.py's pod_stall)."""
    # One pass without sorting: this runs on every pass over every pod of the template.
    first: tuple[str, str] | None = None
    for pod in new:
        stall = pod_stall(pod)
        if stall and (first is None or pod.meta.name < first[0]):
            first = (pod.meta.name, stall)
    return "" if first is None else f"pod {first[0]}: {first[1]}"


def steady_status(dep: Deployment, counts: PodCounts) -> DeploymentStatus | None:
    """The status reconcile_deployment would set when it has nothing else to do, from the
    owner's counts without a walk of its pods; None when it may have more to do (pods of
    an old template, or too few or too many of the current one): then the full
    reconcile runs. Equal to its SetDeploymentStatus whenever not None (tests/unit/
    test_owner_counts.py)."""
    current_hash = template_hash(dep.template)
    new = counts.live[current_hash]
    live = sum(counts.live.values())
    if live != new or new != dep.replicas:
        return None
    stalls = counts.stalls.get(current_hash)
    stalled = ""
    if stalls:
        first = min(stalls)
        stalled = f"pod {first}: {stalls[first]}"
    ready = sum(counts.ready.values())
    return DeploymentStatus(
        observed_generation=dep.meta.generation,
        replicas=live,
        ready_replicas=ready,
        updated_replicas=new,
        available_replicas=ready,
        stalled_reason=stalled,
    )


def _status(dep: Deployment, new: list[Pod], live: list[Pod]) -> DeploymentStatus:
    ready = sum(1 for p in live if p.status.ready)
    return DeploymentStatus(
        observed_generation=dep.meta.generation,
        replicas=len(live),
        ready_replicas=ready,
        updated_replicas=len(new),
        available_replicas=ready,
        stalled_reason=stalled_reason(new),
    )
