"""Which nodes a lifecycle pass must look at (pure): the changed, the due and the unwell.

The controller manager judges nodes about four times a second
(master/controllers/lifecycle.py). It used to look at every node on every pass to
find the few that are not Ready and alive: at 5,000 nodes, 20,000 lease reads a
second to learn that nothing happened. A Ready node that is heard from stays alive
until a moment known in advance, `alive_until`: its last heartbeat plus its lease,
or its ended session plus the session grace. A heartbeat only moves that moment
later, so it needs no bookkeeping here (a heartbeat costs a dict write, as before);
anything else that may bring it earlier or change the node (a Node write, a session
that ended, a grant, a goodbye, a new lease) touches the node.

`NodeWatch` keeps one deadline per healthy node in a heap. A pass takes the nodes
touched since the last pass, the nodes whose deadline has come, and the nodes the
last pass found unwell (not Ready, or not alive: they are judged on every pass, as
before). A node whose deadline came but that was heard from meanwhile is put back
with its new deadline, unjudged: each healthy node costs about one heap operation
per lease (5,000 nodes at a 22 s lease: ~230 a second), not one per pass.
Everything not taken is Ready and alive, so the pass counts it without looking.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable


def alive_until(
    last_seen: float | None,
    lease_seconds: float,
    session_ended_at: float | None,
    session_grace: float,
) -> float | None:
    """The last moment (monotonic) the node counts as alive if nothing else is heard
    from it (lifecycle.alive_at holds exactly up to it); None: never heard from."""
    if last_seen is None:
        return None
    until = last_seen + lease_seconds
    if session_ended_at is not None:
        until = min(until, session_ended_at + session_grace)
    return until


class NodeWatch:
    """The nodes a pass must look at (see the module docstring)."""

    def __init__(self) -> None:
        # (deadline, node): a healthy node's alive_until when it was last put back.
        self._heap: list[tuple[float, str]] = []
        # Each watched node's current deadline (older heap entries are stale).
        self._deadline: dict[str, float] = {}
        self._touched: set[str] = set()
        # Nodes the last pass found not Ready or not alive: looked at on every pass.
        self._unwell: set[str] = set()

    def touch(self, node: str) -> None:
        """Something about the node changed beyond a heartbeat: look at it next pass."""
        self._touched.add(node)

    def touch_all(self, nodes: Iterable[str]) -> None:
        self._touched.update(nodes)

    def take(self, now: float, until_of: Callable[[str], float | None]) -> set[str]:
        """The nodes to look at now: touched, unwell, or due. A due node that was heard
        from since (`until_of(node)`: its alive_until now) is put back unlooked at."""
        taken = self._touched | self._unwell
        self._touched = set()
        heap = self._heap
        while heap and heap[0][0] < now:
            deadline, node = heapq.heappop(heap)
            if self._deadline.get(node) != deadline:
                continue  # stale: the node was put back with another deadline since
            del self._deadline[node]
            if node in taken:
                continue
            later = until_of(node)
            if later is not None and later >= now:
                self.healthy(node, later)
            else:
                taken.add(node)
        return taken

    def healthy(self, node: str, until: float) -> None:
        """The node was found Ready and alive until `until`: leave it alone till then."""
        self._unwell.discard(node)
        if self._deadline.get(node) == until:
            return
        self._deadline[node] = until
        heapq.heappush(self._heap, (until, node))
        if len(self._heap) > 4 * len(self._deadline) + 64:
            # Stale entries (nodes touched and put back early) pile up: rebuild.
            self._heap = [(d, n) for n, d in self._deadline.items()]
            heapq.heapify(self._heap)

    def unwell(self, node: str) -> None:
        """The node was found not Ready or not alive: look at it on every pass."""
        self._unwell.add(node)
        self._deadline.pop(node, None)

    def forget(self, node: str) -> None:
        """The node is gone."""
        self._unwell.discard(node)
        self._deadline.pop(node, None)
        self._touched.discard(node)

    def watched(self) -> int:
        """Healthy nodes with a deadline (for tests and metrics)."""
        return len(self._deadline)
