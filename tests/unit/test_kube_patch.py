"""The HTTP API's patch flavours: JSON patch, merge patch and strategic merge with merge keys."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from master.api.kube.patch import PatchError, json_patch, merge_patch, strategic_merge
from master.manifest.schema import DEPLOYMENT, SERVICE


def _deployment() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80}],
                        },
                        {"name": "side", "image": "busybox"},
                    ]
                }
            },
        },
    }


def test_strategic_merge_updates_a_container_by_name_and_keeps_the_others() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}
    out = strategic_merge(_deployment(), patch, DEPLOYMENT)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "side"]
    assert containers[0]["image"] == "nginx:2"
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]


def test_strategic_merge_deletes_by_key_and_merges_env_by_name() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "side", "$patch": "delete"},
                        {"name": "web", "env": [{"name": "B", "value": "3"}, {"name": "C"}]},
                    ]
                }
            }
        }
    }
    out = strategic_merge(_deployment(), patch, DEPLOYMENT)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web"]
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C"}]
    assert containers[0]["env"] == env


def test_strategic_merge_honours_set_element_order_and_null_deletes() -> None:
    patch = {
        "metadata": {"labels": {"tier": None}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
                    "containers": [{"name": "side", "image": "busybox:2"}],
                }
            }
        },
    }
    out = strategic_merge(_deployment(), patch, DEPLOYMENT)
    assert out["metadata"]["labels"] == {"app": "web"}
    names = [c["name"] for c in out["spec"]["template"]["spec"]["containers"]]
    assert names == ["side", "web"]
    assert not any(k.startswith("$") for k in out["spec"]["template"]["spec"])


def test_service_ports_merge_by_port() -> None:
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    out = strategic_merge(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, SERVICE)
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]


def test_merge_patch_replaces_lists_whole() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}}
    out = merge_patch(_deployment(), patch)
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "only", "image": "x"}]


def test_json_patch_replace_add_remove_and_failing_test() -> None:
    doc = _deployment()
    out = json_patch(
        doc,
        [
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/metadata/labels/new~1key", "value": "v"},
            {"op": "remove", "path": "/spec/template/spec/containers/1"},
        ],
    )
    assert out["spec"]["replicas"] == 5
    assert out["metadata"]["labels"]["new/key"] == "v"
    assert len(out["spec"]["template"]["spec"]["containers"]) == 1
    assert doc["spec"]["replicas"] == 2  # the input is not changed
    with pytest.raises(PatchError, match="test"):
        json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 3}])
    with pytest.raises(PatchError, match="does not exist"):
        json_patch(doc, [{"op": "replace", "path": "/spec/nothing/here", "value": 1}])


def test_merge_patch_copies_only_the_paths_it_changes() -> None:
    doc = _deployment()
    before = copy.deepcopy(doc)

    out = merge_patch(doc, {"spec": {"replicas": 5}})

    assert out["spec"]["replicas"] == 5
    assert doc == before  # the input is left as it was
    assert out["spec"] is not doc["spec"]
    # What the patch does not touch is shared, not copied (a deep copy per level was the
    # largest cost of a merge-patch write after validation).
    assert out["spec"]["template"] is doc["spec"]["template"]
    assert out["metadata"] is doc["metadata"]
