"""What each pod costs the master, held to its shape: work done once per pod (or once per
owner or node) is not done again on every change of it.

Apply -> Running at 50,000 pods goes through these for every pod, several times each
(tests/bench/apply_path.py); each of these was a measurable share of a pod's CPU.
"""

from __future__ import annotations

import secrets
from collections import Counter

import pytest

from master.controllers import owner_counts
from master.controllers.naming import random_suffix
from master.controllers.owner_counts import OwnerCounts
from master.model import Container, ObjectMeta, Pod, PodSpec, PodStatus
from master.scheduler import pod_index
from master.scheduler.pod_index import PodIndex

ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def test_a_suffix_is_five_uniform_characters_from_one_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[int] = []

    def randbelow(n: int) -> int:
        draws.append(n)
        return 1 + 2 * 27 + 26 * 27**4  # digits 1, 2, 0, 0, 26 (least significant first)

    monkeypatch.setattr(secrets, "randbelow", randbelow)
    assert random_suffix() == "cdbb9"
    assert draws == [27**5]  # every suffix equally likely: one draw below 27^5


def test_suffixes_use_the_whole_alphabet_evenly() -> None:
    seen = Counter(c for _ in range(4000) for c in random_suffix())
    assert set(seen) == set(ALPHABET)
    expected = 4000 * 5 / len(ALPHABET)
    assert all(0.7 * expected < n < 1.3 * expected for n in seen.values()), seen


def _pod(i: int, node: str = "", ready: bool = False) -> Pod:
    spec = PodSpec(containers=(Container(name="c", image="nginx:latest"),))
    return Pod(
        ObjectMeta(name=f"web-{i}"),
        spec,
        owner="web",
        template_hash="abc",
        node_name=node,
        status=PodStatus(ready=ready),
    )


def test_an_owner_s_and_a_node_s_counts_are_made_once_not_per_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: Counter[str] = Counter()

    class CountedPodCounts(owner_counts.PodCounts):
        def __init__(self) -> None:
            made["owner"] += 1
            super().__init__()

    class CountedSums(pod_index._NodeSums):
        def __init__(self) -> None:
            made["node"] += 1
            super().__init__()

    monkeypatch.setattr(owner_counts, "PodCounts", CountedPodCounts)
    monkeypatch.setattr(pod_index, "_NodeSums", CountedSums)
    counts, index = OwnerCounts([]), PodIndex([], [])
    for i in range(50):
        previous = None
        for pod in (_pod(i), _pod(i, "n1"), _pod(i, "n1", ready=True)):  # made, bound, ready
            counts.on_change("Pod", pod, False, previous)
            index.on_change("Pod", pod, False, previous)
            previous = pod

    # 150 changes; the counts are made again only when the one pod there was left them
    # empty for a moment (the first pod's versions), never per change.
    assert made["owner"] <= 3 and made["node"] <= 2, made
    assert counts.counts("default", "web").ready == {"abc": 50}
