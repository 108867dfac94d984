"""pods/eviction (master/api/kube/eviction.py): kubectl drain's request, judged as
`pinnace drain` judges a pod, over the real controller manager with a fake clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from kernel.clock import FakeClock
from master.api.kube import errors, resources
from master.api.kube.eviction import evict
from master.api.kube.protobuf import MAGIC, _schema, decode
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import (
    Container,
    Deployment,
    ObjectMeta,
    Pod,
    PodSpec,
    PodTemplate,
    Volume,
)
from master.state import ClusterState
from master.store import MemoryStore
from tests.unit.ready_nodes import add_ready_node


def _cluster(replicas: int = 2) -> tuple[ClusterState, ControllerManager]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases, lease_seconds=30.0)
    add_ready_node(state, leases, clock, "n1", 2**32)
    state.put(
        Deployment(
            meta=ObjectMeta(name="web"),
            replicas=replicas,
            selector={"app": "web"},
            template=PodTemplate(
                labels={"app": "web"}, spec=PodSpec(containers=(Container("web", "img"),))
            ),
        )
    )
    manager.run_pass()
    for pod in state.pods():  # as their agent would report them
        state.put(replace(pod, status=replace(pod.status, ready=True)))
    return state, manager


def _evict(
    state: ClusterState, manager: ControllerManager, name: str, body: object = None
) -> dict[str, Any]:
    return asyncio.run(evict(state, manager, name, "default", body, False))


def test_evictions_go_one_at_a_time_within_the_deployments_budget() -> None:
    state, manager = _cluster(replicas=2)
    first, second = sorted(p.meta.name for p in state.pods())

    answered = _evict(state, manager, first)

    assert (answered["status"], answered["code"]) == ("Success", 201)
    assert state.pod(first).deletion_requested_at  # type: ignore[union-attr]
    with pytest.raises(errors.KubeError) as refused:
        _evict(state, manager, second)
    assert (refused.value.code, refused.value.reason) == (429, "TooManyRequests")
    assert refused.value.message == (
        "Cannot evict pod as it would violate the pod's disruption budget: deployment web "
        "has 1 of 2 replicas not ready and may lose at most 1 at a time"
    )
    assert refused.value.details["retryAfterSeconds"] == 10
    assert not state.pod(second).deletion_requested_at  # type: ignore[union-attr]
    # Evicting one already stopping is granted again (kubectl's retry after a lost answer).
    assert _evict(state, manager, first)["status"] == "Success"


def test_a_pod_whose_claim_lives_on_its_node_is_refused_with_pinnace_drains_reason() -> None:
    state, manager = _cluster(replicas=1)
    (pod,) = state.pods()
    spec = replace(
        pod.spec, volumes=(Volume("data", source="persistentVolumeClaim", claim_name="data-0"),)
    )
    state.put(replace(pod, spec=spec))

    with pytest.raises(errors.KubeError) as refused:
        _evict(state, manager, pod.meta.name)

    assert (refused.value.code, refused.value.reason) == (500, "InternalError")
    assert "its claim data-0 keeps its data on this node" in refused.value.message
    assert not state.pod(pod.meta.name).deletion_requested_at  # type: ignore[union-attr]


def test_an_unmanaged_pod_may_be_evicted_kubectl_asks_only_with_force() -> None:
    state, manager = _cluster(replicas=0)
    state.put(
        Pod(
            meta=ObjectMeta(name="alone"),
            spec=PodSpec(containers=(Container("c", "img"),)),
            node_name="n1",
        )
    )
    assert _evict(state, manager, "alone")["status"] == "Success"
    assert state.pod("alone").deletion_requested_at  # type: ignore[union-attr]


def test_dry_run_grace_period_and_a_missing_or_misnamed_pod() -> None:
    state, manager = _cluster(replicas=1)
    (pod,) = state.pods()
    name = pod.meta.name
    dry = {"kind": "Eviction", "metadata": {"name": name}, "deleteOptions": {"dryRun": ["All"]}}

    assert _evict(state, manager, name, dry)["status"] == "Success"
    assert not state.pod(name).deletion_requested_at  # type: ignore[union-attr]
    with pytest.raises(errors.KubeError, match="does not match"):
        _evict(state, manager, name, {"kind": "Eviction", "metadata": {"name": "other"}})
    with pytest.raises(errors.KubeError) as missing:
        _evict(state, manager, "nope")
    assert missing.value.code == 404

    _evict(state, manager, name, {"kind": "Eviction", "deleteOptions": {"gracePeriodSeconds": 3}})
    assert state.pod(name).stop_grace_seconds == 3  # type: ignore[union-attr]


def test_discovery_lists_pods_eviction_as_kubectl_drain_looks_for_it() -> None:
    # kubectl drain evicts only when /api/v1 lists pods/eviction with kind Eviction and a
    # group and version; otherwise it deletes the pods.
    entries = {r["name"]: r for r in resources.core_resource_list()["resources"]}
    eviction = entries["pods/eviction"]
    assert (eviction["kind"], eviction["group"], eviction["version"]) == (
        "Eviction", "policy", "v1",
    )  # fmt: skip
    assert eviction["verbs"] == ["create"]


def _protobuf(api_version: str, kind: str, message: str, **fields: Any) -> bytes:
    from google.protobuf import message_factory

    pool = _schema().pool
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(message))
    unknown = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("k8s.io.apimachinery.pkg.runtime.Unknown")
    )
    raw = cls(**fields).SerializeToString()
    envelope = unknown(typeMeta={"apiVersion": api_version, "kind": kind}, raw=raw)
    return MAGIC + envelope.SerializeToString()


def test_protobuf_eviction_and_delete_options_bodies_decode() -> None:
    # kubectl drain's typed client sends DeleteOptions as protobuf when it deletes pods;
    # an Eviction may come as protobuf too.
    options = _protobuf(
        "v1", "DeleteOptions", "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        propagationPolicy="Orphan", gracePeriodSeconds=4,
    )  # fmt: skip
    assert decode(options) == {
        "apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Orphan",
        "gracePeriodSeconds": 4,
    }  # fmt: skip
    eviction = _protobuf(
        "policy/v1", "Eviction", "k8s.io.api.policy.v1.Eviction",
        metadata={"name": "web-1", "namespace": "default"},
        deleteOptions={"dryRun": ["All"]},
    )  # fmt: skip
    assert decode(eviction) == {
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "web-1", "namespace": "default"},
        "deleteOptions": {"dryRun": ["All"]},
    }  # fmt: skip
