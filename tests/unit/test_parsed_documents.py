"""Documents that arrive parsed (a Kubernetes API request's JSON body): validated as they
are, held to the loader's limits, with no round trip through YAML text
(master/manifest/loader.py check_document, documents.py parse_documents)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import master.manifest.documents as documents
from kernel.clock import FakeClock
from master.api.kube import resources
from master.api.kube.writes import Writer, patch
from master.manifest import ManifestError, parse_documents, parse_manifests
from master.manifest.loader import MAX_DEPTH, MAX_EXPANDED_NODES, fewer_values_than
from master.model import Container, Deployment, ObjectMeta, PodSpec, PodTemplate
from master.state import ClusterState
from master.store import MemoryStore

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 80}],
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                    }
                ]
            },
        },
    },
}


def _nested(depth: int) -> Any:
    deep: Any = "x"
    for _ in range(depth):
        deep = {"k": deep}
    return deep


def test_a_parsed_document_gives_what_its_json_text_gives() -> None:
    from_text = parse_manifests([("web", json.dumps(DEPLOYMENT).encode())], "team")
    from_value = parse_documents([("web", DEPLOYMENT)], "team")

    assert from_value == from_text


def test_invalid_fields_are_reported_in_the_same_words() -> None:
    bad = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": "three"}}
    with pytest.raises(ManifestError) as from_text:
        parse_manifests([("deployments/web", json.dumps(bad).encode())])
    with pytest.raises(ManifestError) as from_value:
        parse_documents([("deployments/web", bad)])

    assert str(from_value.value) == str(from_text.value)
    assert "spec.replicas" in str(from_value.value)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    annotated = {**DEPLOYMENT, "metadata": {"name": "web", "annotations": _nested(MAX_DEPTH)}}

    with pytest.raises(ManifestError) as refused:
        parse_documents([("deployments/web", annotated)])

    assert str(refused.value) == (
        f"deployments/web: document 1: nested deeper than {MAX_DEPTH} levels"
    )


def test_too_many_values_are_refused() -> None:
    many = {**DEPLOYMENT, "metadata": {"name": "web", "labels": {"l": ["v"] * MAX_EXPANDED_NODES}}}

    with pytest.raises(ManifestError) as refused:
        parse_documents([("deployments/web", many)])

    assert str(refused.value) == (
        f"deployments/web: document 1: document too large (more than {MAX_EXPANDED_NODES} values)"
    )


def test_counting_values_stops_at_the_limit() -> None:
    assert fewer_values_than(DEPLOYMENT, 100)
    assert not fewer_values_than(DEPLOYMENT, 20)
    assert not fewer_values_than({"k": list(range(10**6))}, 10)
    assert fewer_values_than(None, 2)


def test_an_api_patch_is_validated_without_the_yaml_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PATCH through the Kubernetes API used to write its object out as JSON text and
    read it back through the YAML loader in a thread: ~3 ms of CPU per write, the largest
    item of the master's profile under tests/bench/kube_api.py's writes."""

    def no_yaml(*_: object) -> None:
        raise AssertionError("an API write went through the YAML loader")

    monkeypatch.setattr(documents, "load_documents", no_yaml)
    state = ClusterState(MemoryStore(), FakeClock())
    template = PodTemplate(
        labels={"app": "web"}, spec=PodSpec(containers=(Container(name="web", image="nginx"),))
    )
    state.put(
        Deployment(meta=ObjectMeta(name="web"), replicas=1, selector={"app": "web"},
                   template=template)
    )  # fmt: skip
    r = resources.resource("apps", "deployments")
    assert r is not None
    body = json.dumps({"spec": {"replicas": 2}}).encode()

    asyncio.run(
        patch(state, r, "web", body, "application/merge-patch+json", 0.0, False,
              w=Writer("kubectl"))
    )  # fmt: skip

    stored = state.get("Deployment", "web")
    assert isinstance(stored, Deployment)
    assert stored.replicas == 2
