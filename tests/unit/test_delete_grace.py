"""A delete's gracePeriodSeconds: stored on the pod, sent to its agent as the stop's grace."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.api.convert import pod_spec_to_proto
from master.api.kube import errors
from master.api.kube.writes import grace_period
from master.api.render import render_object
from master.app.delete import delete_objects
from master.model import Container, ObjectMeta, Pod, PodSpec
from master.state import ClusterState
from master.store import MemoryStore


class _Lifecycle:
    """As the controller manager does: a pod on a live node is marked, not removed."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state

    def delete_pod(self, name: str, reason: str, message: str, namespace: str = "default") -> bool:
        pod = self.state.pod(name, namespace)
        if pod is None or pod.deletion_requested_at:
            return False
        self.state.put(replace(pod, deletion_requested_at=100.0))
        return True

    def forget_node(self, name: str) -> bool:
        return False


def _delete(state: ClusterState, grace: int | None) -> Pod:
    asyncio.run(
        delete_objects(state, _Lifecycle(state), [("Pod", "p")], False, grace_seconds=grace)
    )
    pod = state.pod("p")
    assert pod is not None
    return pod


def test_a_deletes_grace_period_replaces_the_pods_own_for_the_stop_and_may_only_shorten() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    spec = PodSpec(containers=(Container("web", "img"),), termination_grace_period_seconds=30)
    state.put(Pod(meta=ObjectMeta(name="p"), spec=spec, node_name="n1"))
    assert state.pod("p").stop_grace_seconds == 30  # type: ignore[union-attr]

    pod = _delete(state, 5)
    assert (pod.deletion_grace_seconds, pod.stop_grace_seconds) == (5, 5)
    assert pod.spec.termination_grace_period_seconds == 30  # the spec stays as applied
    assert pod_spec_to_proto(pod).termination_grace_period_seconds == 5
    assert render_object(pod, 200.0)["metadata"]["deletionGracePeriodSeconds"] == 5

    assert _delete(state, 20).stop_grace_seconds == 5  # longer: ignored
    assert _delete(state, 0).stop_grace_seconds == 0  # shorter: taken


def test_without_a_grace_period_the_pod_stops_with_its_own() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    spec = PodSpec(containers=(Container("web", "img"),), termination_grace_period_seconds=7)
    state.put(Pod(meta=ObjectMeta(name="p"), spec=spec, node_name="n1"))
    pod = _delete(state, None)
    assert pod.deletion_requested_at and pod.stop_grace_seconds == 7
    assert pod_spec_to_proto(pod).termination_grace_period_seconds == 7


def test_grace_period_values_from_the_body_or_the_query() -> None:
    assert grace_period(None) is None and grace_period("") is None
    assert grace_period(3) == 3 and grace_period("0") == 0
    for bad in (-1, "soon", True, 1.5):
        with pytest.raises(errors.KubeError, match="gracePeriodSeconds must be an integer"):
            grace_period(bad)
