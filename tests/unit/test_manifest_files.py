"""Whole files (issue 11): every error at once, one warning line per object, ignored kinds,
headless Services, Kubernetes' imagePullPolicy default, and what `delete -f` reads."""

from __future__ import annotations

import pytest

from master.manifest import ManifestError, parse_manifests, parse_references
from master.manifest.podspec import default_pull_policy
from master.model import Deployment, Service
from tests.unit.test_manifest_support import DEPLOYMENT, SERVICE, dump, mutate, parse

ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}}


def test_every_invalid_document_of_every_file_is_reported_and_nothing_returned() -> None:
    files = [
        ("a.yaml", dump(mutate(DEPLOYMENT, "spec.replicas", "three"), SERVICE)),
        ("b.yaml", b"kind: [unclosed\n"),
        ("c.yaml", dump(mutate(SERVICE, "spec.ports[0].port", 0), SERVICE)),
    ]

    with pytest.raises(ManifestError) as info:
        parse_manifests(files)

    assert str(info.value).splitlines() == [
        'a.yaml: document 1: spec.replicas: must be an integer >= 0, got "three"',
        "b.yaml: document 1: line 2: invalid YAML: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 1)",
        "c.yaml: document 1: spec.ports[0].port: must be an integer from 1 to 65535, got 0",
        'c.yaml: document 2: metadata.name: Service "web" is defined twice '
        "(first in a.yaml, document 2)",
    ]


def test_warnings_come_one_line_per_object_with_fields_grouped_by_reason() -> None:
    dep = mutate(DEPLOYMENT, "spec.minReadySeconds", 5)
    dep = mutate(dep, "spec.template.spec.initContainers", [{"name": "i", "image": "x"}])
    items = {"apiVersion": "v1", "kind": "List", "items": [SERVICE, dep]}

    parsed = parse(items, file="all.yaml")

    assert parsed.warnings == (
        'all.yaml: document 1: items[1]: Deployment "web": spec.minReadySeconds, '
        "spec.template.spec.initContainers: not supported yet, ignored",
    )


def test_policy_kinds_are_accepted_with_one_warning_and_not_returned() -> None:
    parsed = parse(ROLE, DEPLOYMENT, file="app.yaml")

    assert [o.kind for o in parsed.objects] == ["Deployment"]
    assert parsed.warnings == (
        'app.yaml: document 1: Role "r": kind: Role is not supported, ignored '
        "(pinnace has no role-based access control)",
    )


def test_workload_kinds_are_still_refused() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}

    with pytest.raises(ManifestError, match="kind: Job is not supported yet"):
        parse(job)


def test_headless_service_and_its_rules() -> None:
    (svc,) = parse(mutate(SERVICE, "spec.clusterIP", "None")).objects
    balanced = mutate(mutate(SERVICE, "spec.clusterIP", "None"), "spec.type", "LoadBalancer")

    assert isinstance(svc, Service) and svc.headless
    with pytest.raises(ManifestError, match=r'clusterIP: may not be "None" for a LoadBalancer'):
        parse(balanced)


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("localhost:5000/team/web", "Always"),
        ("localhost:5000/team/web:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/team/web:v2", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_pull_policy_defaults_as_kubernetes(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def test_explicit_pull_policy_wins() -> None:
    doc = mutate(DEPLOYMENT, "spec.template.spec.containers[0].image", "web:latest")
    doc = mutate(doc, "spec.template.spec.containers[0].imagePullPolicy", "IfNotPresent")

    (dep,) = parse(doc).objects

    assert isinstance(dep, Deployment)
    assert dep.template.spec.containers[0].image_pull_policy == "IfNotPresent"


def test_delete_reads_only_kind_and_name() -> None:
    outdated = mutate(DEPLOYMENT, "spec.fieldRemovedLongAgo", True)
    items = {"apiVersion": "v1", "kind": "List", "items": [SERVICE, ROLE]}
    files = [("a.yaml", dump(outdated, items)), ("b.yaml", dump(SERVICE))]

    refs = parse_references(files, ("Deployment", "Service"))

    assert [(r.kind, r.name) for r in refs] == [("Deployment", "web"), ("Service", "web")]


def test_delete_reports_every_document_it_cannot_read() -> None:
    nameless = mutate(SERVICE, "metadata.name")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}

    with pytest.raises(ManifestError) as info:
        parse_references([("x.yaml", dump(nameless, job))], ("Deployment", "Service"))

    assert str(info.value).splitlines() == [
        "x.yaml: document 1: metadata.name: is required to delete an object",
        'x.yaml: document 2: kind: cannot delete kind "Job"; pinnace stores Deployment, Service',
    ]
