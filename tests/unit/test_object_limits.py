"""Limits count objects, not documents (a `kind: List` counts each item), and generated pod
names stay within Kubernetes' limits (generateName: base cut to 58 + 5 random characters)."""

from __future__ import annotations

import re

import pytest
import yaml

from kernel.clock import FakeClock
from master.controllers import manager as manager_module
from master.controllers.actions import CreatePod
from master.controllers.deployment import reconcile_deployment
from master.controllers.manager import ControllerManager
from master.controllers.naming import random_suffix, template_hash
from master.controllers.nodes import LeaseTable
from master.manifest import MAX_OBJECTS, ManifestError, parse_manifests
from master.model import (
    Container,
    Deployment,
    ObjectMeta,
    PodSpec,
    PodTemplate,
)
from master.state import ClusterState
from master.store.memory import MemoryStore
from tests.unit.ready_nodes import add_ready_node

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _doc(name: str) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]},
            },
        },
    }


def _list(names: list[str]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "List", "items": [_doc(n) for n in names]}


def test_a_list_counts_each_item_against_the_object_cap() -> None:
    content = yaml.safe_dump(_list([f"d{i}" for i in range(MAX_OBJECTS + 1)])).encode()

    with pytest.raises(ManifestError) as refused:
        parse_manifests([("big.yaml", content)])

    assert "too many objects" in str(refused.value) and "big.yaml: document 1" in str(refused.value)


def test_lists_in_several_documents_add_up() -> None:
    half = MAX_OBJECTS // 2 + 1
    first = yaml.safe_dump(_list([f"a{i}" for i in range(half)]))
    second = yaml.safe_dump(_list([f"b{i}" for i in range(half)]))

    with pytest.raises(ManifestError) as refused:
        parse_manifests([("two.yaml", f"{first}---\n{second}".encode())])

    assert "too many objects" in str(refused.value)


def test_a_list_of_exactly_the_cap_is_accepted() -> None:
    content = yaml.safe_dump(_list([f"d{i}" for i in range(MAX_OBJECTS)])).encode()

    parsed = parse_manifests([("ok.yaml", content)])

    assert len(parsed.objects) == MAX_OBJECTS


def _deployment(name: str, replicas: int) -> Deployment:
    return Deployment(
        meta=ObjectMeta(name=name),
        replicas=replicas,
        selector={"app": "x"},
        template=PodTemplate(
            labels={"app": "x"},
            spec=PodSpec(containers=(Container(name="c", image="nginx:latest"),)),
        ),
    )


def test_pods_of_a_253_character_deployment_get_names_of_at_most_63() -> None:
    dep = _deployment("d" * 253, 20)

    actions = reconcile_deployment(dep, [], random_suffix)
    names = [a.pod.meta.name for a in actions if isinstance(a, CreatePod)]

    assert len(names) == 20 and len(set(names)) == 20
    for name in names:
        assert len(name) == 63 and DNS_LABEL.match(name), name
        assert name.startswith("d" * 58)


def test_short_names_keep_the_replicaset_form() -> None:
    dep = _deployment("web", 1)

    actions = reconcile_deployment(dep, [], lambda: "bcdfg")
    (create,) = [a for a in actions if isinstance(a, CreatePod)]

    assert create.pod.meta.name == f"web-{template_hash(dep.template)}-bcdfg"


def test_a_suffix_that_meets_an_existing_pod_never_overwrites_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    add_ready_node(state, leases, clock, "n1", 2**32)
    monkeypatch.setattr(manager_module, "random_suffix", lambda: "bcdfg")
    state.put(_deployment("web", 2))

    manager.run_pass()
    first = state.pods()
    manager.run_pass()

    assert len(first) == 1
    assert [p.meta.uid for p in state.pods()] == [first[0].meta.uid]
