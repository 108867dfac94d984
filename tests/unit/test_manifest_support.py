"""Helpers shared by the manifest tests (a valid Deployment/Service to mutate) and their test."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from master.manifest import ManifestError, ParsedManifests, parse_manifests

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web", "tier": "front"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "nginx:1.25",
                        "ports": [{"containerPort": 80, "name": "http"}],
                    }
                ]
            },
        },
    },
}

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
}

_MISSING = object()


def _steps(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]


def mutate(base: dict[str, Any], path: str, value: Any = _MISSING) -> dict[str, Any]:
    """A deep copy of `base` with `path` ("spec.containers[0].image") set, appended or removed."""
    doc = copy.deepcopy(base)
    *parents, last = _steps(path)
    node: Any = doc
    for step in parents:
        node = node[step]
    if value is _MISSING:
        del node[last]
    elif isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    return doc


def dump(*docs: Any) -> bytes:
    return yaml.safe_dump_all(docs, sort_keys=False).encode()


def parse(*docs: Any, file: str = "deployment.yaml") -> ParsedManifests:
    return parse_manifests([(file, dump(*docs))])


def error_of(files: list[tuple[str, bytes]]) -> str:
    with pytest.raises(ManifestError) as info:
        parse_manifests(files)
    message = str(info.value)
    assert "\n" not in message
    return message


def error(*docs: Any, file: str = "deployment.yaml") -> str:
    return error_of([(file, dump(*docs))])


def test_mutate_sets_and_removes_nested_fields_without_touching_the_base() -> None:
    changed = mutate(DEPLOYMENT, "spec.template.spec.containers[0].image", "busybox")
    removed = mutate(DEPLOYMENT, "spec.replicas")

    assert changed["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    assert "replicas" not in removed["spec"]
    assert DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
