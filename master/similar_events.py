"""Similar events become one, as Kubernetes' event correlator makes them (pure).

client-go's EventAggregator (tools/record/events_cache.go): events alike but for
their message (the same involved object, reason, type and source) that keep coming
are combined. Once `max_events` (10) distinct messages of one such group were seen,
each one spaced less than `interval` seconds (600) from the one before, every
further event of the group is recorded as ONE event, "(combined from similar
events): <its message>", whose count grows. A Deployment of 10,000 replicas then
says "created pod ..." nine times and counts the rest in one event, instead of
writing (and trimming from the bounded log) 10,000 events; per-pod events
(Scheduled, Started) name different objects and are never combined.

`SimilarEvents.observe` says whether an event is combined; the caller
(ClusterState.record_event) keeps the combined event's key here and folds the
next ones into it while it exists.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

MAX_EVENTS = 10
INTERVAL_SECONDS = 600.0
# Groups remembered (client-go's LRU holds 4,096 too); the least recently seen go first.
CAPACITY = 4096
COMBINED_PREFIX = "(combined from similar events): "

# (involved kind, namespace, involved name, type, reason, source)
GroupKey = tuple[str, str, str, str, str, str]


@dataclass(slots=True)
class _Group:
    messages: set[str] = field(default_factory=set)
    last_seen: float = float("-inf")
    # The key of the event this group's events are combined into (None: none yet).
    combined: str | None = None


class SimilarEvents:
    def __init__(
        self,
        max_events: int = MAX_EVENTS,
        interval: float = INTERVAL_SECONDS,
        capacity: int = CAPACITY,
    ) -> None:
        self._max_events = max_events
        self._interval = interval
        self._capacity = capacity
        self._groups: OrderedDict[GroupKey, _Group] = OrderedDict()

    def observe(self, group: GroupKey, message: str, now: float) -> bool:
        """Note an event of `group`; whether it is to be combined with its group's."""
        found = self._groups.pop(group, None)
        if found is None or now - found.last_seen > self._interval:
            found = _Group()
        found.messages.add(message)
        found.last_seen = now
        self._groups[group] = found
        if len(self._groups) > self._capacity:
            self._groups.popitem(last=False)
        if len(found.messages) < self._max_events:
            return False
        # As client-go does: the set stays one short of the limit, so each new message
        # (or a repeat of one) keeps the group combined.
        found.messages.pop()
        return True

    def combined_into(self, group: GroupKey) -> str | None:
        """The key of the event `group`'s events are combined into, if any."""
        found = self._groups.get(group)
        return found.combined if found is not None else None

    def combine_into(self, group: GroupKey, event_key: str) -> None:
        found = self._groups.get(group)
        if found is not None:
            found.combined = event_key
