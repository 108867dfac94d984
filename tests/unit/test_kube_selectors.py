"""Label and field selectors of the HTTP API."""

from __future__ import annotations

import pytest

from master.api.kube.selectors import (
    parse_field_selector,
    parse_label_selector,
    selected_name,
)


def test_label_selector_operators() -> None:
    labels = {"app": "web", "tier": "front"}
    assert parse_label_selector("app=web")(labels)
    assert parse_label_selector("app==web,tier!=back")(labels)
    assert parse_label_selector("app in (web, api),tier")(labels)
    assert not parse_label_selector("app notin (web)")(labels)
    assert not parse_label_selector("!tier")(labels)
    assert parse_label_selector("!missing")(labels)
    assert parse_label_selector("")(labels)
    with pytest.raises(ValueError):
        parse_label_selector("app=(")


def test_field_selector_reads_rendered_fields() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    sel = parse_field_selector("spec.nodeName=n1,status.phase!=Failed,status.phase!=Succeeded")
    assert sel(pod)
    assert not parse_field_selector("metadata.name=q")(pod)
    assert parse_field_selector("spec.missing=")(pod)
    assert selected_name("metadata.name=web,x=y") == "web"
    with pytest.raises(ValueError):
        parse_field_selector("spec.nodeName~n1")
