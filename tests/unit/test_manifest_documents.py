"""Files and documents: multi-document YAML, empty documents, List, duplicates across files."""

from __future__ import annotations

from master.manifest import parse_manifests
from master.model import Deployment, Service
from tests.unit.test_manifest_support import DEPLOYMENT, SERVICE, dump, error_of, mutate


def test_multi_document_file_skips_empty_documents_and_counts_them() -> None:
    content = (
        dump(DEPLOYMENT)
        + b"---\n---\n# just a comment\n---\n"
        + dump(mutate(SERVICE, "spec.ports[0].port", "eighty"))
    )

    message = error_of([("app.yaml", content)])

    assert message == (
        'app.yaml: document 4: spec.ports[0].port: must be an integer from 1 to 65535, got "eighty"'
    )


def test_objects_keep_file_order_across_files() -> None:
    files = [("a.yaml", dump(SERVICE)), ("b.yaml", b"\n---\n" + dump(DEPLOYMENT))]

    parsed = parse_manifests(files)

    assert [type(o) for o in parsed.objects] == [Service, Deployment]


def test_list_kind_is_unpacked_and_errors_name_the_item() -> None:
    items = {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [DEPLOYMENT, SERVICE]}
    bad = mutate(items, "items[1].spec.type", "Balanced")

    parsed = parse_manifests([("all.yaml", dump(items))])
    message = error_of([("all.yaml", dump(bad))])

    assert [o.kind for o in parsed.objects] == ["Deployment", "Service"]
    assert message.startswith("all.yaml: document 1: items[1].spec.type: must be one of")


def test_nested_list_and_non_object_items_are_refused() -> None:
    inner = {"apiVersion": "v1", "kind": "List", "items": []}
    nested = {"apiVersion": "v1", "kind": "List", "items": [inner]}
    scalar = {"apiVersion": "v1", "kind": "List", "items": ["web"]}

    assert error_of([("l.yaml", dump(nested))]) == (
        "l.yaml: document 1: items[0].kind: a List may not contain another List"
    )
    assert error_of([("l.yaml", dump(scalar))]) == (
        'l.yaml: document 1: items[0]: must be a Kubernetes object (a map), got "web"'
    )


def test_same_object_twice_across_files_is_refused() -> None:
    files = [("a.yaml", dump(DEPLOYMENT)), ("b.yaml", dump(SERVICE, DEPLOYMENT))]

    message = error_of(files)

    assert message == (
        'b.yaml: document 2: metadata.name: Deployment "web" is defined twice '
        "(first in a.yaml, document 1)"
    )


def test_same_name_for_different_kinds_is_fine() -> None:
    parsed = parse_manifests([("a.yaml", dump(DEPLOYMENT, SERVICE))])

    assert [(o.kind, o.meta.name) for o in parsed.objects] == [
        ("Deployment", "web"),
        ("Service", "web"),
    ]


def test_document_that_is_not_a_map_is_refused() -> None:
    assert error_of([("x.yaml", b"- a\n- b\n")]) == (
        "x.yaml: document 1: must be a Kubernetes object (a map), got a list"
    )
    assert error_of([("x.yaml", b"hello\n")]) == (
        'x.yaml: document 1: must be a Kubernetes object (a map), got "hello"'
    )


def test_empty_input_gives_no_objects() -> None:
    parsed = parse_manifests([("empty.yaml", b""), ("c.yaml", b"# nothing\n")])

    assert parsed.objects == () and parsed.warnings == ()
