"""The scheduler's inputs kept up to date by a state listener: pending pods, node aggregates.

A scheduling pass needs the pods waiting for a node and, per node, what its bound pods
already take (nodeinfo.NodeInfo). Both used to be derived afresh on every pass from every
pod (`state.pods()`, a filter, `build_node_infos` over all pods): at 50,000 pods a walk of
every pod and a re-sum of every node per pass, however few pods were waiting, and a
pass comes after every status report an agent sends. Here each change of one pod moves
one pod's share: its old version (the state tells it with the change) comes out of its
node's sums and the pending set, its new one goes in. A pass then costs the pending pods
plus the nodes changed since the last one; nothing here holds a pod but the pending ones
(a dict of every pod, kept only to know each one's old version, was dropped).

`node_infos()` is equal to `build_node_infos(nodes, pods)` over the same state, and
`pending()` to the pods without a node and not being deleted (tests/unit/
test_pod_index.py checks both against the full computation over random sequences).
Owned by the controller manager; subscribe before any change is made after the snapshot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from master.model import Node, Pod, Resources, StoredObject, key_of
from master.scheduler.nodeinfo import HostPort, NodeInfo, pod_demand


@dataclass(slots=True)
class _NodeSums:
    """What the pods bound to one node take (mutable; NodeInfos are made from it)."""

    cpu: int = 0
    memory: int = 0
    scored_cpu: int = 0
    scored_memory: int = 0
    # A multiset: two pods may (wrongly) hold one port; it is free only once both are gone.
    ports: Counter[HostPort] = field(default_factory=Counter)
    owners: dict[str, int] = field(default_factory=dict)
    count: int = 0

    def add(self, pod: Pod, sign: int) -> None:
        # (pod_demand: the spec's sums, made once per spec while a burst binds its pods.)
        demand = pod_demand(pod)
        requests, scored = demand.requests, demand.nonzero_requests
        self.cpu += sign * requests.cpu_millis
        self.memory += sign * requests.memory_bytes
        self.scored_cpu += sign * scored.cpu_millis
        self.scored_memory += sign * scored.memory_bytes
        for port in demand.host_ports:
            self.ports[port] += sign
            if self.ports[port] <= 0:
                del self.ports[port]
        owner = pod.owner_key
        if owner:
            left = self.owners.get(owner, 0) + sign
            if left > 0:
                self.owners[owner] = left
            else:
                self.owners.pop(owner, None)
        self.count += sign

    def info(self, node: Node) -> NodeInfo:
        return NodeInfo(
            node=node,
            requested=Resources(self.cpu, self.memory),
            nonzero_requested=Resources(self.scored_cpu, self.scored_memory),
            host_ports=frozenset(self.ports),
            pods_by_owner=dict(self.owners),
            pod_count=self.count,
        )


def _pending(pod: Pod) -> bool:
    return not pod.node_name and not pod.deletion_requested_at


def _same_share(a: Pod, b: Pod) -> bool:
    """Whether two versions of a pod take the same from the index: the same node, spec
    (by identity: one object for a template's pods and all their versions), owner and
    pending-ness; `_NodeSums.add` and `_pending` read nothing else."""
    return (
        a.node_name == b.node_name
        and a.spec is b.spec
        and a.owner == b.owner
        and a.meta.namespace == b.meta.namespace
        and bool(a.deletion_requested_at) == bool(b.deletion_requested_at)
    )


class PodIndex:
    """Pending pods and per-node sums, moved by each change (see the module docstring)."""

    def __init__(self, nodes: list[Node], pods: list[Pod]) -> None:
        self._pending: dict[str, Pod] = {}
        self._sums: dict[str, _NodeSums] = {}
        self._nodes: dict[str, Node] = {n.meta.name: n for n in nodes}
        # Each node's NodeInfo as last made; dropped when the node or its pods change.
        self._infos: dict[str, NodeInfo] = {}
        for pod in pods:
            self._add(key_of(pod), pod)

    def on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        """The ClusterState listener: one object stored or removed (`previous`: its
        version before, which this index holds the share of)."""
        if isinstance(obj, Pod):
            key = key_of(obj)
            if isinstance(previous, Pod) and not deleted and _same_share(previous, obj):
                # Its status alone changed (every agent report): the node's sums and
                # NodeInfo stay; a pending pod is held as its new version.
                if key in self._pending:
                    self._pending[key] = obj
                return
            if isinstance(previous, Pod):
                self._remove(key, previous)
            if not deleted:
                self._add(key, obj)
        elif isinstance(obj, Node):
            name = obj.meta.name
            if deleted:
                self._nodes.pop(name, None)
            else:
                self._nodes[name] = obj
            self._infos.pop(name, None)

    def _add(self, key: str, pod: Pod) -> None:
        if _pending(pod):
            self._pending[key] = pod
        if pod.node_name:
            sums = self._sums.get(pod.node_name)
            if sums is None:  # (not setdefault: a _NodeSums made for every pod change)
                sums = self._sums[pod.node_name] = _NodeSums()
            sums.add(pod, 1)
            self._infos.pop(pod.node_name, None)

    def _remove(self, key: str, pod: Pod) -> None:
        self._pending.pop(key, None)
        name = pod.node_name
        if name:
            sums = self._sums[name]
            sums.add(pod, -1)
            if not sums.count:
                del self._sums[name]
            self._infos.pop(name, None)

    def any_pending(self) -> bool:
        """Whether any pod waits for a node (without listing them)."""
        return bool(self._pending)

    def pending(self) -> list[Pod]:
        """The pods waiting for a node (unbound, not being deleted), in no set order."""
        return list(self._pending.values())

    def node_infos(self) -> dict[str, NodeInfo]:
        """Every node with what its bound pods take (pods of unknown nodes are left out)."""
        for _ in self.make_infos():
            pass
        infos = self._infos
        return {name: infos[name] for name in self._nodes}

    def make_infos(self) -> Iterator[None]:
        """Make the NodeInfo of every node whose pods changed since it was last made, one a
        step, so a caller can let other work run between them (after a burst's binding
        every node changed: at 5,000 nodes ~20-50 ms of the master's loop in one piece,
        over a pass step's 20 ms). A node changed meanwhile is made again by the next
        `node_infos()`."""
        infos = self._infos
        for name, node in list(self._nodes.items()):
            if name not in infos and self._nodes.get(name) is node:
                sums = self._sums.get(name)
                infos[name] = sums.info(node) if sums is not None else NodeInfo(node=node)
                yield
