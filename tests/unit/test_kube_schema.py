"""OpenAPI, discovery, Status and tables of the HTTP API agree with validation and the CLI."""

from __future__ import annotations

import json
from typing import Any

from master.api.kube import openapi, resources
from master.api.kube.errors import invalid, split_manifest_error
from master.api.kube.tables import render_table
from master.api.tables import header_for, rows_for
from master.manifest import deployment, podspec, schema, service


def _doc(path: str) -> dict[str, Any]:
    raw = openapi.v3_document(path)
    assert raw is not None
    doc: dict[str, Any] = json.loads(raw)
    return doc


def test_every_field_the_validators_accept_has_a_type_in_the_schema() -> None:
    assert schema.UNTYPED == []


def test_openapi_describes_exactly_the_fields_the_validators_accept() -> None:
    schemas = _doc("apis/apps/v1")["components"]["schemas"]
    spec = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]
    assert set(spec) == set(deployment.SPEC_SUPPORTED)
    container = schemas["io.k8s.api.core.v1.Container"]["properties"]
    assert set(container) == set(podspec.CONTAINER_SUPPORTED)
    pod = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert set(pod) == {*podspec.POD_SUPPORTED, "nodeName"}
    core = _doc("api/v1")["components"]["schemas"]
    assert set(core["io.k8s.api.core.v1.ServiceSpec"]["properties"]) == set(service.SPEC_SUPPORTED)


def test_patch_operations_offer_field_validation_so_kubectl_validates_on_the_server() -> None:
    doc = _doc("apis/apps/v1")
    patches = [
        op["patch"]
        for path, op in doc["paths"].items()
        if path.endswith("/deployments/{name}") and "patch" in op
    ]
    assert patches
    gvk = patches[0]["x-kubernetes-group-version-kind"]
    assert gvk == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in [p["name"] for p in patches[0]["parameters"]]


def test_merge_keys_are_published_for_strategic_merge() -> None:
    schemas = _doc("api/v1")["components"]["schemas"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    ports = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "port"


def test_v3_index_points_at_every_group_version() -> None:
    index = openapi.v3_index()["paths"]
    assert set(index) == {
        "api/v1",
        "apis/apps/v1",
        "apis/networking.k8s.io/v1",
        "apis/discovery.k8s.io/v1",
        "apis/storage.k8s.io/v1",
        "apis/coordination.k8s.io/v1",
    }
    assert index["api/v1"]["serverRelativeURL"].startswith("/openapi/v3/api/v1?hash=")


def test_discovery_lists_scale_as_autoscaling_v1() -> None:
    apps = resources.resource_list("apps")
    assert apps is not None
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    core = resources.resource_list("")
    assert core is not None
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert pods["shortNames"] == ["po"] and "watch" in pods["verbs"]


def test_invalid_names_the_field_in_the_cli_words() -> None:
    text = 'deployments/web: document 1: spec.replicas: must be an integer >= 0, got "three"'
    assert split_manifest_error(text) == ("spec.replicas", 'must be an integer >= 0, got "three"')
    status = invalid("Deployment", "apps", "web", text).status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["message"] == (
        'Deployment.apps "web" is invalid: spec.replicas: must be an integer >= 0, got "three"'
    )
    assert status["details"]["causes"][0]["field"] == "spec.replicas"


def test_table_columns_and_cells_are_the_cli_ones() -> None:
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
        "status": {"phase": "Running", "containerStatuses": [{"ready": True, "restartCount": 2}]},
    }
    now = 1767225600.0 + 90
    table = render_table("Pod", [pod], now, "7")
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == header_for("Pod", wide=True)
    shown = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert shown == header_for("Pod", wide=False)
    assert table["rows"][0]["cells"] == rows_for("Pod", [pod], wide=True, now=now)[0]
    assert table["rows"][0]["object"]["metadata"]["name"] == "p"
