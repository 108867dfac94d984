"""The /scale subresource of deployments and statefulsets (master/api/kube/writes.py
set_scale): what `kubectl scale` and typed clients' UpdateScale write."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from kernel.clock import FakeClock
from master.api.kube import errors, resources
from master.api.kube.writes import Writer, set_scale
from master.model import (
    Container,
    Deployment,
    ObjectMeta,
    PodSpec,
    PodTemplate,
    StatefulSet,
)
from master.state import ClusterState
from master.store import MemoryStore

MERGE = "application/merge-patch+json"
TEMPLATE = PodTemplate(
    labels={"app": "web"},
    spec=PodSpec(containers=(Container(name="web", image="nginx:latest"),)),
)


def _state() -> ClusterState:
    """A statefulset `db` and, to tell kinds apart, a deployment `web` (no set of that name)."""
    state = ClusterState(MemoryStore(), FakeClock())
    state.put(StatefulSet(meta=ObjectMeta(name="db"), replicas=3, selector={"app": "db"},
                          template=TEMPLATE, service_name="db"))  # fmt: skip
    state.put(Deployment(meta=ObjectMeta(name="web"), replicas=2, selector={"app": "web"},
                         template=TEMPLATE))  # fmt: skip
    return state


def _patch(state: ClusterState, name: str, replicas: int, kind: str) -> Any:
    body = json.dumps({"spec": {"replicas": replicas}}).encode()
    return asyncio.run(
        set_scale(state, name, body, MERGE, "PATCH", 0.0, w=Writer("kubectl"), kind=kind)
    )


def test_statefulsets_list_a_scale_subresource_in_discovery() -> None:
    listed = {r["name"]: r for r in resources.resource_list("apps")["resources"]}  # type: ignore[index]

    assert listed["statefulsets/scale"]["verbs"] == ["get", "update", "patch"]
    assert (listed["statefulsets/scale"]["group"], listed["statefulsets/scale"]["version"]) == (
        "autoscaling", "v1"
    )  # fmt: skip


def test_a_statefulsets_scale_patch_sets_its_replicas_as_an_update_of_scale() -> None:
    state = _state()

    got = _patch(state, "db", 1, "StatefulSet")

    assert (got["kind"], got["spec"]["replicas"], got["status"]["selector"]) == (
        "Scale", 1, "app=db"
    )  # fmt: skip
    sts = state.get("StatefulSet", "db")
    assert isinstance(sts, StatefulSet) and sts.replicas == 1
    (entry,) = sts.meta.managed_fields
    assert (entry.manager, entry.operation, entry.subresource) == ("kubectl", "Update", "scale")
    web = state.get("Deployment", "web")
    assert isinstance(web, Deployment) and web.replicas == 2


def test_a_missing_statefulset_is_not_found_even_beside_a_deployment_of_its_name() -> None:
    state = _state()

    with pytest.raises(errors.KubeError) as refused:
        _patch(state, "web", 5, "StatefulSet")

    assert refused.value.code == 404
    assert refused.value.message == 'statefulsets.apps "web" not found'
    web = state.get("Deployment", "web")
    assert isinstance(web, Deployment) and web.replicas == 2
