"""Field sets as structured-merge-diff computes them: maps, associative lists, sets, atomics."""

from __future__ import annotations

from typing import Any

import pytest

from master.api.fieldsets import (
    ATOMIC,
    SCALAR,
    FieldSetError,
    Path,
    Shape,
    associative,
    compare,
    f,
    from_fields_v1,
    k,
    merge,
    path_string,
    prune,
    remove,
    set_of_scalars,
    string_map,
    to_field_set,
    to_fields_v1,
    v,
)

PORT = Shape("struct", fields={"containerPort": SCALAR, "protocol": SCALAR, "name": SCALAR})
ENV = Shape("struct", fields={"name": SCALAR, "value": SCALAR})
CONTAINER = Shape(
    "struct",
    fields={
        "name": SCALAR,
        "image": SCALAR,
        "command": ATOMIC,
        "env": associative(ENV, "name"),
        "ports": associative(PORT, "containerPort", "protocol", protocol="TCP"),
    },
)
POD = Shape(
    "struct",
    fields={
        "metadata": Shape("struct", fields={"labels": string_map()}),
        "spec": Shape(
            "struct",
            fields={
                "containers": associative(CONTAINER, "name"),
                "selector": ATOMIC,
                "finalizers": set_of_scalars(),
            },
        ),
    },
)

CONTAINERS = (f("spec"), f("containers"))
WEB = (*CONTAINERS, k(name="web"))


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}}, "spec": spec}


def test_a_configuration_owns_its_leaves_list_items_and_map_entries() -> None:
    pod = _pod(
        containers=[
            {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}], "command": ["a"]}
        ],
        selector={"app": "web"},
        finalizers=["x"],
    )
    assert to_field_set(pod, POD) == {
        (f("metadata"), f("labels"), f("app")),
        WEB,
        (*WEB, f("name")),
        (*WEB, f("image")),
        (*WEB, f("command")),  # an atomic list is one field
        (*WEB, f("ports"), k(containerPort=80, protocol="TCP")),  # the key's default
        (*WEB, f("ports"), k(containerPort=80, protocol="TCP"), f("containerPort")),
        (f("spec"), f("selector")),  # an atomic map is one field
        (f("spec"), f("finalizers"), v("x")),
    }


def test_empty_and_null_values_are_owned_as_they_are() -> None:
    # An empty list sets nothing (as in structured-merge-diff); an empty map is a value.
    assert to_field_set({"spec": {"selector": None, "containers": []}}, POD) == {
        (f("spec"), f("selector")),
    }
    assert to_field_set({"metadata": {"labels": {}}}, POD) == {(f("metadata"), f("labels"))}


def test_fields_v1_is_kubernetes_encoding_and_reads_back() -> None:
    paths = to_field_set(_pod(containers=[{"name": "web", "ports": [{"containerPort": 80}]}]), POD)
    doc = to_fields_v1(paths)
    assert doc == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:containers": {
                'k:{"name":"web"}': {
                    ".": {},
                    "f:name": {},
                    "f:ports": {
                        'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}
                    },
                }
            }
        },
    }
    assert from_fields_v1(doc) == paths
    assert from_fields_v1({"f:spec": {"f:finalizers": {'v:"x"': {}}}}) == {
        (f("spec"), f("finalizers"), v("x"))
    }


@pytest.mark.parametrize("doc", [{"x:y": {}}, {"k:[1]": {}}, {"f:a": []}, ["f:a"], {"k:{}": {}}])
def test_malformed_fields_v1_is_refused(doc: Any) -> None:
    with pytest.raises(FieldSetError):
        from_fields_v1(doc)


def test_paths_print_as_kubernetes_prints_them() -> None:
    path: Path = (*WEB, f("ports"), k(containerPort=80, protocol="TCP"), f("name"))
    assert path_string(path) == (
        '.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"].name'
    )
    assert path_string((f("spec"), f("finalizers"), v("x"))) == '.spec.finalizers[="x"]'


def test_compare_names_what_an_update_added_changed_and_removed() -> None:
    old = _pod(containers=[{"name": "web", "image": "a", "env": [{"name": "A", "value": "1"}]}])
    new = _pod(
        containers=[
            {"name": "web", "image": "b"},
            {"name": "side", "image": "c"},
        ]
    )
    new["metadata"]["labels"]["tier"] = "x"
    change = compare(old, new, POD)
    assert change.modified == {(*WEB, f("image"))}
    side = (*CONTAINERS, k(name="side"))
    assert change.added == {
        (f("metadata"), f("labels"), f("tier")),
        side,  # a new list item is itself added, as well as its fields
        (*side, f("name")),
        (*side, f("image")),
    }
    env_a = (*WEB, f("env"), k(name="A"))
    assert change.removed == {env_a, (*env_a, f("name")), (*env_a, f("value"))}


def test_compare_of_a_created_object_adds_maps_but_not_structs() -> None:
    change = compare({}, _pod(selector={"a": "b"}), POD)
    # labels (a map) appears as a member; metadata and spec (structs) do not.
    assert change.added == {
        (f("metadata"), f("labels")),
        (f("metadata"), f("labels"), f("app")),
        (f("spec"), f("selector")),
    }
    assert compare(_pod(), _pod(), POD).added == frozenset()


def test_compare_treats_atomic_values_and_sets_whole_or_by_member() -> None:
    old = _pod(selector={"a": "1"}, finalizers=["x", "y"])
    new = _pod(selector={"a": "2", "b": "3"}, finalizers=["y", "z"])
    change = compare(old, new, POD)
    assert change.modified == {(f("spec"), f("selector"))}
    assert change.added == {(f("spec"), f("finalizers"), v("z"))}
    assert change.removed == {(f("spec"), f("finalizers"), v("x"))}


def test_merge_merges_maps_and_keyed_items_and_replaces_atomic_values() -> None:
    live = _pod(
        containers=[
            {"name": "a", "image": "1", "command": ["x", "y"]},
            {"name": "b", "image": "2"},
        ],
        selector={"app": "web", "old": "1"},
        finalizers=["x"],
    )
    config = {
        "spec": {
            "containers": [{"name": "b", "image": "3"}, {"name": "c", "image": "4"}],
            "selector": {"app": "web"},
            "finalizers": ["y"],
        }
    }
    merged = merge(live, config, POD)
    assert merged["spec"]["containers"] == [
        {"name": "a", "image": "1", "command": ["x", "y"]},
        {"name": "b", "image": "3"},
        {"name": "c", "image": "4"},
    ]
    assert merged["spec"]["selector"] == {"app": "web"}
    assert merged["spec"]["finalizers"] == ["x", "y"]
    assert merged["metadata"] == {"labels": {"app": "web"}}
    assert live["spec"]["containers"][1]["image"] == "2"  # the live object is not changed


def test_merge_keeps_the_configurations_order_for_the_items_it_names() -> None:
    live = _pod(containers=[{"name": n} for n in ("a", "x", "b")])
    config = {"spec": {"containers": [{"name": "b"}, {"name": "a"}]}}
    merged = merge(live, config, POD)
    assert [c["name"] for c in merged["spec"]["containers"]] == ["b", "a", "x"]


def test_ports_without_protocol_match_their_tcp_item() -> None:
    live = _pod(containers=[{"name": "web", "ports": [{"containerPort": 80, "protocol": "TCP"}]}])
    config = _pod(containers=[{"name": "web", "ports": [{"containerPort": 80, "name": "http"}]}])
    merged = merge(live, config, POD)
    assert merged["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"}
    ]


def test_an_item_without_its_key_is_refused() -> None:
    with pytest.raises(FieldSetError, match="missing its key 'name'"):
        to_field_set(_pod(containers=[{"image": "x"}]), POD)
    with pytest.raises(FieldSetError, match="must be maps"):
        merge(_pod(containers=[{"name": "a"}]), _pod(containers=["web"]), POD)


def test_remove_drops_fields_and_items_with_everything_under_them() -> None:
    pod = _pod(
        containers=[{"name": "web", "image": "a", "env": [{"name": "A"}, {"name": "B"}]}],
        finalizers=["x", "y"],
    )
    out = remove(
        pod,
        [
            (*WEB, f("env"), k(name="A")),
            (f("spec"), f("finalizers"), v("y")),
            (f("metadata"), f("labels"), f("app")),
            (f("spec"), f("nothing"), f("here")),  # absent: nothing to do
        ],
        POD,
    )
    assert out["spec"]["containers"][0]["env"] == [{"name": "B"}]
    assert out["spec"]["finalizers"] == ["x"]
    assert out["metadata"]["labels"] == {}
    assert pod["spec"]["finalizers"] == ["x", "y"]


def test_prune_removes_what_the_applier_dropped_unless_someone_owns_it() -> None:
    before = _pod(
        containers=[
            {"name": "web", "image": "a", "command": ["x"]},
            {"name": "side", "image": "b", "defaulted": "d"},
        ]
    )
    last = to_field_set(before, POD) - {(*WEB, f("command"))}
    config = _pod(containers=[{"name": "web", "image": "a"}])
    applied = to_field_set(config, POD)
    other = frozenset({(*WEB, f("command"))})
    out = prune(merge(before, config, POD), last, applied | other, POD)
    # The side container goes whole (its unowned default too); the command another
    # manager owns stays, though the applier's old set had it... (it did not here).
    assert out["spec"]["containers"] == [{"name": "web", "image": "a", "command": ["x"]}]
    # A field only the applier owned and no longer applies goes.
    out = prune(before, to_field_set(before, POD), applied, POD)
    assert out["spec"]["containers"] == [{"name": "web", "image": "a"}]
    # Nothing previously applied: nothing removed.
    assert prune(before, frozenset(), applied, POD) == before


def test_prune_keeps_a_dropped_field_that_another_manager_also_owns() -> None:
    live = _pod(containers=[{"name": "web", "image": "a"}])
    last = to_field_set(live, POD)
    kept = prune(live, last, frozenset({(*WEB, f("image"))}), POD)
    # The item stays with its key, though only the applier owned the key field.
    assert kept["spec"]["containers"] == [{"name": "web", "image": "a"}]
    # ... but not the labels only the applier had (metadata went with them: the API
    # edge protects identity fields by owning them; see managedfields._IDENTITY).
    assert "metadata" not in kept
