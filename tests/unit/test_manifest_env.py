"""env[].valueFrom and envFrom in manifests (issue 11): what is accepted and refused."""

from __future__ import annotations

from typing import Any

import pytest

from master.manifest import ManifestError
from master.model import Deployment, EnvFromSource, EnvVar, EnvVarSource
from tests.unit.test_manifest_support import DEPLOYMENT, mutate, parse

C0 = "spec.template.spec.containers[0]"


def _container(**fields: Any) -> Deployment:
    doc = DEPLOYMENT
    for key, value in fields.items():
        doc = mutate(doc, f"{C0}.{key}", value)
    (dep,) = parse(doc).objects
    assert isinstance(dep, Deployment)
    return dep


def test_sources_are_kept_as_references() -> None:
    secret = {"secretKeyRef": {"name": "s", "key": "k", "optional": True}}
    field = {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}
    resource = {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}
    dep = _container(
        env=[
            {"name": "A", "valueFrom": secret},
            {"name": "B", "valueFrom": field},
            {"name": "C", "valueFrom": resource},
        ],
        envFrom=[{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
    )

    (c,) = dep.template.spec.containers
    assert c.env == (
        EnvVar("A", "", EnvVarSource("secretKeyRef", name="s", key="k", optional=True)),
        EnvVar("B", "", EnvVarSource("fieldRef", field_path="status.podIP")),
        EnvVar("C", "", EnvVarSource("resourceFieldRef", resource="limits.memory", divisor="1Mi")),
    )
    assert c.env_from == (EnvFromSource("configMapRef", "settings", "CFG_"),)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            "env[0].valueFrom: may not be set when value is not empty",
        ),
        (
            {"name": "A", "valueFrom": {}},
            "env[0].valueFrom: must have exactly one of configMapKeyRef, secretKeyRef, fieldRef",
        ),
        (
            {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
            'env[0].valueFrom.fieldRef.fieldPath: "metadata.labels" is not supported for env',
        ),
        (
            {"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}},
            "env[0].valueFrom.resourceFieldRef.resource: must be one of limits.cpu",
        ),
        (
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "a/b"}}},
            "env[0].valueFrom.configMapKeyRef.key: must consist of alphanumeric characters",
        ),
        (
            {"name": "A", "valueFrom": {"secretKeyRef": {"key": "k"}}},
            "env[0].valueFrom.secretKeyRef.name: is required",
        ),
    ],
)
def test_mistakes_are_refused(env: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as info:
        _container(env=[env])

    assert f"{C0}.{message}" in str(info.value)


def test_env_from_needs_exactly_one_source() -> None:
    both = {"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}

    with pytest.raises(ManifestError, match="must have exactly one of configMapRef, secretRef"):
        _container(envFrom=[both])
