"""Events alike but for their message are combined into one, as Kubernetes combines them."""

from __future__ import annotations

from kernel.clock import FakeClock
from master.model import Event
from master.similar_events import COMBINED_PREFIX, SimilarEvents
from master.state import ClusterState
from master.store import MemoryStore

GROUP = ("Deployment", "default", "web", "Normal", "SuccessfulCreate", "master")


def test_the_tenth_distinct_message_of_a_group_and_all_after_it_are_combined() -> None:
    similar = SimilarEvents()

    said = [similar.observe(GROUP, f"created pod web-{i}", float(i)) for i in range(12)]

    assert said == [False] * 9 + [True] * 3


def test_a_repeated_message_is_not_a_new_one_and_a_quiet_group_starts_over() -> None:
    similar = SimilarEvents()
    assert not any(similar.observe(GROUP, "same", float(i)) for i in range(20))
    for i in range(9):
        similar.observe(GROUP, f"m{i}", 100.0)
    assert similar.observe(GROUP, "m9", 100.0)
    # More than ten minutes after the last one: a group starts over.
    assert not similar.observe(GROUP, "m10", 100.0 + 601)


def _events(state: ClusterState) -> list[Event]:
    return [e for e in state.objects("Event") if isinstance(e, Event)]


def test_a_deployment_creating_many_pods_says_nine_and_counts_the_rest_in_one() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    for i in range(25):
        state.record_event("Deployment", "web", "SuccessfulCreate", f"created pod web-{i}")
    # Per-pod events name different objects: never combined.
    for i in range(25):
        state.record_event("Pod", f"web-{i}", "Scheduled", f"assigned web-{i} to n1")

    events = _events(state)
    created = [e for e in events if e.reason == "SuccessfulCreate"]
    assert [e.count for e in created] == [1] * 9 + [16]
    combined = created[-1]
    assert combined.message == COMBINED_PREFIX + "created pod web-24"
    assert len([e for e in events if e.reason == "Scheduled"]) == 25
