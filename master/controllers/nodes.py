"""Node leases: when each node was last heard from, and how a condition is stored.

Agents heartbeat over their session stream; the master keeps the time of each
node's last heartbeat in memory only (`LeaseTable`, monotonic clock), so a
heartbeat costs no store write; an agent stopping for a restart says goodbye,
which the table keeps until the agent registers again. What the leases mean —
Ready, Unknown or NotReady, and whose pods are replaced — is decided by
master/controllers/lifecycle.py; only condition transitions are persisted.

When the master starts, and whenever its own loop was stalled, every known
node gets a fresh lease from that moment: the master was away, not the nodes,
so their pods are left alone while the agents reconnect.

Evicted pods are forgotten by the master, which makes the deployment
controller create replacements on healthy nodes; an agent that comes back
stops whatever is no longer assigned to it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from master.model import Node


@dataclass(frozen=True, slots=True)
class NodeTransition:
    ready: bool
    reason: str
    message: str


class LeaseTable:
    """Last heartbeat per node, and agents' goodbyes, on the monotonic clock."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._goodbye: dict[str, float] = {}
        # Nodes whose lease was granted by the master (start, stall), not earned.
        self._granted: set[str] = set()
        # The lease each node was given when it registered (heartbeats stretch with size).
        self._lease: dict[str, float] = {}

    def renew(self, node: str, at: float) -> None:
        self._seen[node] = at
        self._granted.discard(node)

    def grant(self, node: str, until: float, lease_seconds: float) -> None:
        """A lease that runs out at `until` though the node said nothing (the master was
        away, not the nodes)."""
        self._seen[node] = until - lease_seconds
        self._granted.add(node)

    def set_lease(self, node: str, seconds: float) -> None:
        """The lease this node was told at registration (master/controllers/heartbeats.py)."""
        self._lease[node] = seconds

    def lease_of(self, node: str) -> float | None:
        return self._lease.get(node)

    def last_seen(self, node: str) -> float | None:
        return self._seen.get(node)

    def granted(self, node: str) -> bool:
        """Whether the node's lease is a grant it has not renewed since."""
        return node in self._granted

    def say_goodbye(self, node: str, at: float) -> None:
        """The node's agent is stopping and said it will be back."""
        self._goodbye[node] = at

    def goodbye_at(self, node: str) -> float | None:
        return self._goodbye.get(node)

    def welcome(self, node: str) -> None:
        """The node's agent registered again: a goodbye is over."""
        self._goodbye.pop(node, None)

    def forget(self, node: str) -> None:
        self._seen.pop(node, None)
        self._goodbye.pop(node, None)
        self._granted.discard(node)
        self._lease.pop(node, None)


def apply_transition(node: Node, t: NodeTransition, now: float) -> Node:
    status = replace(
        node.status,
        ready=t.ready,
        reason=t.reason,
        message=t.message,
        last_transition=now,
    )
    return replace(node, status=status)
