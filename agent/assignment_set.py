"""The node's assignment set as the master's numbered messages build it (pure).

A master that sends changes (master/app/assignment_feed.py) sends this node's whole set
first in each session (and whenever the set is in doubt), then only what changed: the
pods there now whole, the pods gone by name, each message numbered one past the one
before. The set built so is the whole set the master would have sent: the rebuilt set
must never hold a pod the master took away, so a change is applied only on top of the
number it follows. Any other number (a message lost or out of turn) applies nothing:
the agent keeps running the last set it was sure of and asks for the whole set
(AssignmentsResync), ignoring changes until it comes. Each heartbeat ack names the last
number sent before it: a lost change shows there even when no other change follows it
(the whole-set protocol only mended a lost set with the next one), and so does a lost
answer to the request (it is asked for again). A new session starts from nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

# What the set holds of a pod: the agent's PodAssignment; a hollow agent's, its epoch.
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class AskWhole:
    """Ask the master for the whole set: the last number applied, and why."""

    sequence: int
    reason: str


@dataclass(slots=True)
class AssignmentSet(Generic[P]):
    # The number of the last message applied (None: no whole set yet this session).
    sequence: int | None = None
    # The set built so far, by pod (kernel.names.pod_ref).
    pods: dict[str, P] = field(default_factory=dict)
    # While a whole set is asked for: the highest number the master is known to have sent
    # (changes are ignored until the set comes; a higher number in an ack means the set
    # itself was lost on the way, and it is asked for again). None: nothing asked.
    asked: int | None = None

    def whole(self, sequence: int, pods: Mapping[str, P]) -> None:
        """A whole set: it is the set now, whatever came before."""
        self.sequence = sequence
        self.pods = dict(pods)
        self.asked = None

    def changes(
        self, sequence: int, changed: Mapping[str, P], removed: Iterable[str]
    ) -> bool | AskWhole:
        """Applies changes that follow on from the set held (True); else the request for
        the whole set, once (False while it is on its way: nothing applied)."""
        if self.sequence is None or sequence != self.sequence + 1 or self.asked is not None:
            ask = self._ask(sequence, f"changes numbered {sequence} after set {self.held}")
            return ask if ask is not None else False
        self.sequence = sequence
        for name in removed:
            self.pods.pop(name, None)
        self.pods.update(changed)
        return True

    def acked(self, sequence: int) -> AskWhole | None:
        """A heartbeat ack names the last assignment message sent before it (0: none
        numbered): holding another means one was lost on the way, whole set please."""
        if not sequence or sequence == self.sequence:
            return None
        if self.asked is not None and sequence <= self.asked:
            return None  # the set asked for is still on its way
        self.asked = None  # the master sent past the request and no set came: again
        return self._ask(sequence, f"the master sent set {sequence}, this agent holds {self.held}")

    @property
    def held(self) -> int:
        return self.sequence or 0

    def _ask(self, sent: int, reason: str) -> AskWhole | None:
        """The request for the whole set, unless one is on its way."""
        if self.asked is not None:
            self.asked = max(self.asked, sent)
            return None
        self.asked = sent
        return AskWhole(self.held, reason)
