"""The node notices an agent sent lately, to send again when the master may have lost them.

A notice (agent/state/events.py SendNotice: the master was unreachable, the loop stalled, a
pod bridge could not be made) becomes an event the master writes with the others, some time
after it arrives. A master that reloads its memory from its store before then (a write in
doubt, a leader resuming) drops it, as does a leader killed before then; the agent cannot
tell, and no later change of its would say the notice again. So the session keeps the
notices it sent in the last KEEP_S seconds (at most KEPT), and sends them again, marked
`again`, when the master asks for every report and at the start of every session; the
master records such a notice only when its log holds no such event of the node
(master/app/reports.py), so one that was stored is not counted twice.

KEEP_S bounds how long a master may hold a notice before storing it and still get it back:
longer than a write's etcd timeout and the settling after it. An older notice sent again to
a master whose bounded event log has trimmed it would be recorded again as new.
"""

from __future__ import annotations

from collections import deque

from agent.state.events import SendNotice

# Seconds a sent notice is kept to be sent again, and how many at most.
KEEP_S = 600.0
KEPT = 32


class NoticeLog:
    """The notices sent, by the monotonic time each went; see the module docstring."""

    def __init__(self, keep_s: float = KEEP_S, kept: int = KEPT) -> None:
        self._keep_s = keep_s
        self._sent: deque[tuple[float, SendNotice]] = deque(maxlen=kept)

    def sent(self, notice: SendNotice, now: float) -> None:
        """`notice` went to the master at `now` (a first time: one sent again is kept
        already, with the time it first went)."""
        self._sent.append((now, notice))

    def again(self, now: float) -> list[SendNotice]:
        """The notices to send again now, oldest first: those sent in the last KEEP_S."""
        while self._sent and now - self._sent[0][0] > self._keep_s:
            self._sent.popleft()
        return [notice for _, notice in self._sent]
