"""Node leases: when each node was last heard from, and how a condition is stored.

Agents heartbeat over their session stream; the master keeps the time of each
node's last heartbeat in memory only (`LeaseTable`, monotonic clock), so a
heartbeat costs no store write; an agent stopping for a restart says goodbye,
which the table keeps until the agent registers again. The table also keeps when
a node's session stream ended (the agent died, or the master's keepalive pings
went unanswered), until the agent registers again. What the leases mean —
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
        # When each node's session stream ended, until it registers again.
        self._ended: dict[str, float] = {}
        # Nodes changed other than by a heartbeat since the controller last asked: what
        # may bring a node's end of life earlier (master/controllers/node_watch.py).
        self._touched: set[str] = set()

    def take_touched(self) -> set[str]:
        """The nodes changed other than by a heartbeat since the last call."""
        touched, self._touched = self._touched, set()
        return touched

    def renew(self, node: str, at: float) -> None:
        self._seen[node] = at
        self._granted.discard(node)

    def grant(self, node: str, until: float, lease_seconds: float) -> None:
        """A lease that runs out at `until` though the node said nothing (the master was
        away, not the nodes: a stream that ended meanwhile is judged by the grant too)."""
        self._touched.add(node)
        self._seen[node] = until - lease_seconds
        self._granted.add(node)
        self._ended.pop(node, None)

    def session_ended(self, node: str, at: float) -> None:
        """The node's session stream ended (not superseded by a newer one). Not while the
        node runs on a grant: after a stall of the master its keepalive pings may time out
        on waking, before any answer is read; the grant's reconnect grace judges it."""
        self._touched.add(node)
        if node not in self._granted:
            self._ended[node] = at

    def session_started(self, node: str) -> None:
        """The node's agent registered: whatever stream ended before is replaced."""
        self._touched.add(node)
        self._ended.pop(node, None)

    def ended_at(self, node: str) -> float | None:
        return self._ended.get(node)

    def set_lease(self, node: str, seconds: float) -> None:
        """The lease this node was told at registration (master/controllers/heartbeats.py)."""
        self._touched.add(node)
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
        self._touched.add(node)
        self._goodbye[node] = at

    def goodbye_at(self, node: str) -> float | None:
        return self._goodbye.get(node)

    def welcome(self, node: str) -> None:
        """The node's agent registered again: a goodbye is over."""
        self._touched.add(node)
        self._goodbye.pop(node, None)

    def forget(self, node: str) -> None:
        self._touched.add(node)
        self._seen.pop(node, None)
        self._goodbye.pop(node, None)
        self._granted.discard(node)
        self._lease.pop(node, None)
        self._ended.pop(node, None)


def apply_transition(node: Node, t: NodeTransition, now: float) -> Node:
    status = replace(
        node.status,
        ready=t.ready,
        reason=t.reason,
        message=t.message,
        last_transition=now,
    )
    return replace(node, status=status)
