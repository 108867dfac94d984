"""What a node's session sends of the node's assignment set next: all of it, or what changed.

Before, every change of any pod of a node sent the node's whole set again. A node given
its 10 pods one at a time (the scheduler spreads a burst over every node, so at 1,000 or
5,000 nodes a node gets one pod per scheduling step) was sent 1 + 2 + ... + 10 = 55 pods,
each converted to protobuf and sent on the master's one core.

An agent that says it takes changes (SessionHello.takes_assignment_changes) is sent the
whole set when the session starts, after the master reloaded its memory (with the request
for every report), when it asks (the changes did not follow on from the set it holds:
AssignmentsResync), and when what all of the node's pods are made of changed outside the
pods themselves (a Service's environment variables, a ConfigMap or Secret a pod reads, a
claim's size, the load balancer letting stops go); else only the pods changed since the
last send: each one there now whole (added or changed), each one gone by its key. Every
message is numbered one past the one before it; the agent applies a change only on top of
the number it holds (agent/assignment_set.py). An older agent is sent the whole set every
time, as before. The node servicer (master/api/node_servicer.py) converts and sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SendWhole:
    """Send the node's whole set, every chunk of it numbered `sequence`."""

    sequence: int


@dataclass(frozen=True, slots=True)
class SendChanges:
    """Send these pods (by key, sorted): each one the node has now, whole, and each one it
    no longer has, as removed. Numbered from `first` on, one more per message."""

    first: int
    keys: tuple[str, ...]


Send = SendWhole | SendChanges


@dataclass(slots=True)
class AssignmentFeed:
    """One session's side of the numbering, and what changed since its last send."""

    # The agent applies changes (an older one: False, the whole set every time).
    takes_changes: bool
    # The number of the last message sent (0: none yet this session).
    sequence: int = 0
    # The whole set goes next (the session's first send is a whole set).
    whole_due: bool = True
    # Keys of the node's pods changed since the last send ("namespace/name"): bound here,
    # changed, stopping, deleted, or moved away.
    changed: set[str] = field(default_factory=set)

    def pod_changed(self, key: str) -> None:
        """A pod this node has, had, or now gets changed what its assignment is made of."""
        if self.takes_changes and not self.whole_due:
            self.changed.add(key)

    def all_changed(self) -> None:
        """What every pod of the node is made of may have changed, or the agent's set is in
        doubt (a reload, a request for the whole set): the whole set goes next."""
        self.whole_due = True
        self.changed.clear()

    def due(self) -> bool:
        """Whether an assignment message would go now. (An older agent's session sends the
        whole set whenever the node's session is told its pods changed.)"""
        return self.whole_due or bool(self.changed) or not self.takes_changes

    def take(self) -> Send | None:
        """The next send (None: nothing changed), its changes handed over."""
        if self.whole_due or not self.takes_changes:
            self.whole_due = False
            self.changed.clear()
            self.sequence += 1
            return SendWhole(self.sequence)
        if not self.changed:
            return None
        keys = tuple(sorted(self.changed))
        self.changed.clear()
        return SendChanges(self.sequence + 1, keys)

    def numbered(self, messages: int) -> None:
        """The changes just taken went as this many messages (numbered from `first` on)."""
        self.sequence += messages
