"""Each owner's pods counted by template, kept by a state listener: a Deployment's status
without a walk of its pods.

Every pod status an agent reports marks its Deployment dirty, and the deployment
controller used to take every pod of it (`pods_of_owner`) and walk them several times
(live, new, old, ready, stalled) to learn, nearly always, that nothing is to be done but
a status count. At 50,000 pods of one Deployment that was a walk of 50,000 pods per
pass, a pass after every batch of reports: the apply's cost grew with the square of its
size. Here each change of one pod moves its counts (its old version, which the state
tells with the change, comes out; the new one goes in), and deployment.steady_status
answers from the counts when nothing but the status is due. No pod is kept here.

`counts(namespace, owner)` equals `OwnerCounts.of(pods)` over the owner's pods at any
moment (tests/unit/test_owner_counts.py checks it against random sequences).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from master.model import Pod, StoredObject

# Container states that mean a pod will not become ready without a change.
STALLED_REASONS = ("ErrImagePull", "ImagePullBackOff", "CrashLoopBackOff", "CreateContainerError")


def pod_stall(pod: Pod) -> str:
    """Why this pod cannot become ready ("container c: Reason: message"), or "": its first
    container in a state that will not change without a change of the pod."""
    for cs in pod.status.container_statuses:
        if cs.reason in STALLED_REASONS:
            detail = f": {cs.message}" if cs.message else ""
            return f"container {cs.name}: {cs.reason}{detail}"
    return ""


@dataclass(slots=True)
class PodCounts:
    """One owner's pods by template hash (mutable; only OwnerCounts changes it)."""

    # Pods not being deleted, and of those the ready ones.
    live: Counter[str] = field(default_factory=Counter)
    ready: Counter[str] = field(default_factory=Counter)
    # Pods asked to stop and not yet gone.
    terminating: Counter[str] = field(default_factory=Counter)
    # Live pods that cannot become ready: hash -> pod name -> why (pod_stall).
    stalls: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, pod: Pod, sign: int) -> None:
        hash_ = pod.template_hash
        if pod.deletion_requested_at:
            _move(self.terminating, hash_, sign)
            return
        _move(self.live, hash_, sign)
        if pod.status.ready:
            _move(self.ready, hash_, sign)
        stall = pod_stall(pod)
        if stall:
            by_name = self.stalls.setdefault(hash_, {})
            if sign > 0:
                by_name[pod.meta.name] = stall
            else:
                by_name.pop(pod.meta.name, None)
                if not by_name:
                    del self.stalls[hash_]

    def status_changed(self, old: Pod, new: Pod) -> None:
        """`add(old, -1)` then `add(new, 1)` for two versions of a live pod of one template
        (what moves: its ready count and its stall)."""
        hash_ = new.template_hash
        if old.status.ready != new.status.ready:
            _move(self.ready, hash_, 1 if new.status.ready else -1)
        was, stall = pod_stall(old), pod_stall(new)
        if was == stall:
            return
        name = new.meta.name
        if stall:
            self.stalls.setdefault(hash_, {})[name] = stall
            return
        by_name = self.stalls.get(hash_, {})
        by_name.pop(name, None)
        if not by_name:
            self.stalls.pop(hash_, None)

    @staticmethod
    def of(pods: list[Pod]) -> PodCounts:
        """The counts over `pods` from scratch (what the incremental ones must equal)."""
        counts = PodCounts()
        for pod in pods:
            counts.add(pod, 1)
        return counts

    @property
    def empty(self) -> bool:
        return not self.live and not self.terminating


def _move(counter: Counter[str], key: str, sign: int) -> None:
    left = counter[key] + sign
    if left > 0:
        counter[key] = left
    else:
        del counter[key]


class OwnerCounts:
    """PodCounts per (namespace, owner), moved by each pod change."""

    def __init__(self, pods: list[Pod]) -> None:
        self._counts: dict[tuple[str, str], PodCounts] = {}
        for pod in pods:
            self._add(pod)

    def on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        """The ClusterState listener: one object stored or removed (`previous`: its
        version before, which the counts hold)."""
        if not isinstance(obj, Pod):
            return
        if (
            isinstance(previous, Pod)
            and not deleted
            and previous.owner == obj.owner
            and previous.template_hash == obj.template_hash
            and previous.meta.namespace == obj.meta.namespace
            and bool(previous.deletion_requested_at) == bool(obj.deletion_requested_at)
        ):
            # Its status alone changed (every agent report): only its ready count and stall
            # can move, and are moved in place.
            if previous.owner and not obj.deletion_requested_at:
                counts = self._counts[(obj.meta.namespace, obj.owner)]
                counts.status_changed(previous, obj)
            return
        if isinstance(previous, Pod) and previous.owner:
            owner = (previous.meta.namespace, previous.owner)
            counts = self._counts[owner]
            counts.add(previous, -1)
            if counts.empty:
                del self._counts[owner]
        if not deleted:
            self._add(obj)

    def _add(self, pod: Pod) -> None:
        if not pod.owner:
            return
        owner = (pod.meta.namespace, pod.owner)
        counts = self._counts.get(owner)
        if counts is None:
            # (Not setdefault: that made three Counters for every pod change, and threw
            # them away for all but an owner's first pod.)
            counts = self._counts[owner] = PodCounts()
        counts.add(pod, 1)

    def counts(self, namespace: str, owner: str) -> PodCounts:
        """The owner's counts now (empty when it has no pods); read-only for the caller."""
        return self._counts.get((namespace, owner)) or PodCounts()
