"""Node lifecycle: leases, Ready/NotReady, and what happens to a lost node's pods.

Agents heartbeat over their session stream; the master keeps the time of each
node's last heartbeat in memory only (`LeaseTable`, monotonic clock), so a
heartbeat costs no store write. `reconcile_node_lease` (pure) turns a lease into
a Ready/NotReady transition; only transitions are persisted.

When the master starts, every known node gets a fresh lease from that moment:
the master was away, not the nodes, so their pods are left alone while the
agents reconnect.

Pods on a NotReady node are evicted once the node has been NotReady for
`eviction_timeout` (0 by default: replace at once, instead of Kubernetes' 300 s
toleration). Evicted pods are forgotten by the master, which makes the
deployment controller create replacements on healthy nodes; an agent that
comes back stops whatever is no longer assigned to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from master.model import Node, NodeStatus


@dataclass(frozen=True, slots=True)
class NodeTransition:
    ready: bool
    reason: str
    message: str


class LeaseTable:
    """Last heartbeat per node, on the monotonic clock."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def renew(self, node: str, at: float) -> None:
        self._seen[node] = at

    def last_seen(self, node: str) -> float | None:
        return self._seen.get(node)

    def forget(self, node: str) -> None:
        self._seen.pop(node, None)


def reconcile_node_lease(
    node: Node, last_seen: float | None, now: float, lease_seconds: float
) -> NodeTransition | None:
    """The transition a node's lease calls for, or None when its state stands."""
    silent_for = None if last_seen is None else now - last_seen
    fresh = silent_for is not None and silent_for <= lease_seconds
    if fresh and not node.status.ready:
        return NodeTransition(True, "NodeReady", f"node {node.meta.name} is sending heartbeats")
    if not fresh and node.status.ready:
        if silent_for is None:
            why = "no heartbeat since the master started"
        else:
            why = f"no heartbeat for {silent_for:.1f}s (lease {lease_seconds:g}s)"
        return NodeTransition(False, "NodeNotReady", f"node {node.meta.name}: {why}")
    return None


def apply_transition(node: Node, t: NodeTransition, now: float) -> Node:
    status = replace(
        node.status,
        ready=t.ready,
        reason=t.reason,
        message=t.message,
        last_transition=now,
    )
    return replace(node, status=status)


def should_evict(node: Node, now: float, eviction_timeout: float) -> bool:
    """Pods on a NotReady node go once it has been NotReady for the timeout."""
    status: NodeStatus = node.status
    return not status.ready and now - status.last_transition >= eviction_timeout
