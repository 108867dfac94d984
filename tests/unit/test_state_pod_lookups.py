"""ClusterState's pods_on_node and pods_of_owner stay the full computation over random puts
and removals: a put of the same pod on the same node and owner (every status report) only
moves the pod in memory (master/state.py `_put`); a new node or owner moves it between
the lookups' sets."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.model import Container, ObjectMeta, Pod, PodSpec, PodStatus
from master.state import ClusterState
from master.store.memory import MemoryStore

SPEC = PodSpec(containers=(Container(name="c", image="nginx:latest"),))
NODES = ("", "n0", "n1")
OWNERS = ("", "web", "api")


def _check(state: ClusterState) -> None:
    pods = state.pods()
    for node in NODES[1:]:
        found = sorted(p.meta.name for p in state.pods_on_node(node))
        assert found == sorted(p.meta.name for p in pods if p.node_name == node), node
    for owner in OWNERS[1:]:
        found = sorted(p.meta.name for p in state.pods_of_owner(owner))
        assert found == sorted(p.meta.name for p in pods if p.owner == owner), owner


@pytest.mark.parametrize("seed", range(3))
def test_pod_lookups_follow_every_put_and_removal(seed: int) -> None:
    rng = random.Random(seed)
    state = ClusterState(MemoryStore(), FakeClock())
    for _ in range(400):
        name = f"p{rng.randrange(8)}"
        pod = state.pod(name)
        step = rng.random()
        if pod is None or step < 0.1:
            made = Pod(ObjectMeta(name=name), SPEC, owner=rng.choice(OWNERS))
            state.put(replace(made, node_name=rng.choice(NODES)))
        elif step < 0.6:  # a status report: same node and owner
            state.put(replace(pod, status=PodStatus(ready=not pod.status.ready)))
        elif step < 0.75:
            state.put(replace(pod, node_name=rng.choice(NODES)))
        elif step < 0.85:
            state.put(replace(pod, owner=rng.choice(OWNERS)))
        else:
            state.remove("Pod", name)
        _check(state)
    pods = state.pods()
    assert [p.meta.name for p in state.objects("Pod")] == [p.meta.name for p in pods]
