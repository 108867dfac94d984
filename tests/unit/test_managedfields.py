"""metadata.managedFields: Update and Apply over a ledger, conflicts, and the schema's shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from master.api.fieldsets import f, path_string
from master.api.managedfields import (
    Conflict,
    FieldConflicts,
    Manager,
    applied_object,
    conflict_message,
    describe,
    entries_from_request,
    entry_fields,
    record,
    shape_of,
)
from master.model import ManagedFieldsEntry

NOW = 1_700_000_000.0
CSA = Manager("kubectl-client-side-apply", "Update", "apps/v1")
KUBECTL = Manager("kubectl", "Apply", "apps/v1")
OTHER = Manager("other", "Apply", "apps/v1")
SCALE = Manager("kubectl", "Update", "apps/v1", "scale")


def _dep(replicas: int = 3, image: str = "nginx", **extra: Any) -> dict[str, Any]:
    container = {"name": "web", "image": image, "ports": [{"containerPort": 80}], **extra}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "uid": "u", "resourceVersion": "7", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [container]},
            },
        },
        "status": {"replicas": 1},
    }


def _owners(entries: tuple[ManagedFieldsEntry, ...]) -> dict[str, set[str]]:
    return {
        f"{e.manager}/{e.operation}{'/' + e.subresource if e.subresource else ''}": {
            path_string(p) for p in entry_fields(e)
        }
        for e in entries
    }


def _apply(
    entries: tuple[ManagedFieldsEntry, ...],
    live: dict[str, Any],
    config: dict[str, Any],
    who: Manager = KUBECTL,
    force: bool = False,
) -> tuple[dict[str, Any], tuple[ManagedFieldsEntry, ...]]:
    wanted = applied_object(entries, live, config, "Deployment", who)
    old = live if live else None
    return wanted, record(entries, old, wanted, "Deployment", who, NOW, config, force)


def test_the_deployment_shape_follows_kubernetes_list_keys() -> None:
    pod = shape_of("Deployment").child("spec").child("template").child("spec")
    containers = pod.child("containers")
    assert (containers.relation, containers.keys) == ("associative", ("name",))
    ports = containers.element.child("ports")  # type: ignore[union-attr]
    assert ports.keys == ("containerPort", "protocol") and ports.key_defaults == {"protocol": "TCP"}
    assert containers.element.child("command").relation == "atomic"  # type: ignore[union-attr]
    assert shape_of("Deployment").child("spec").child("selector").relation == "atomic"
    assert shape_of("Service").child("spec").child("ports").keys == ("port", "protocol")
    assert shape_of("ConfigMap").child("data").relation == "map"


def test_a_create_is_an_update_owning_every_field_it_set_but_not_identity_or_status() -> None:
    entries = record((), None, _dep(), "Deployment", CSA, NOW)
    assert [(e.manager, e.operation, e.api_version, e.time) for e in entries] == [
        ("kubectl-client-side-apply", "Update", "apps/v1", NOW)
    ]
    owned = _owners(entries)["kubectl-client-side-apply/Update"]
    assert ".spec.replicas" in owned and ".metadata.labels.app" in owned
    assert '.spec.template.spec.containers[name="web"].image' in owned
    assert not any(p.startswith((".status", ".metadata.name", ".metadata.uid")) for p in owned)
    assert json.loads(entries[0].fields_v1)["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}


def test_an_update_takes_what_it_changes_from_others_without_conflict() -> None:
    entries = record((), None, _dep(), "Deployment", CSA, NOW)
    entries = record(entries, _dep(), _dep(replicas=5), "Deployment", SCALE, NOW + 1)
    owners = _owners(entries)
    assert owners["kubectl/Update/scale"] == {".spec.replicas"}
    assert ".spec.replicas" not in owners["kubectl-client-side-apply/Update"]
    # A removed field leaves every manager.
    entries = record(entries, _dep(), _dep(image="x", args=["a"]), "Deployment", CSA, NOW + 2)
    assert (
        '.spec.template.spec.containers[name="web"].args'
        in _owners(entries)["kubectl-client-side-apply/Update"]
    )
    entries = record(entries, _dep(args=["a"]), _dep(), "Deployment", SCALE, NOW + 3)
    assert not any(".args" in p for ps in _owners(entries).values() for p in ps)


def test_an_update_that_changes_nothing_adds_no_entry() -> None:
    entries = record((), None, _dep(), "Deployment", CSA, NOW)
    assert record(entries, _dep(), _dep(), "Deployment", SCALE, NOW + 1) == entries


def test_apply_owns_exactly_its_configuration() -> None:
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 2}}  # fmt: skip
    _, entries = _apply((), _dep(), config)
    assert _owners(entries) == {"kubectl/Apply": {".spec.replicas"}}
    assert entries[0].api_version == "apps/v1"


def test_apply_conflicts_on_a_changed_value_another_manager_owns() -> None:
    entries = record((), None, _dep(), "Deployment", CSA, NOW)
    with pytest.raises(FieldConflicts) as refused:
        _apply(entries, _dep(), _dep(replicas=4, image="x"))
    assert [(c.manager, c.path) for c in refused.value.conflicts] == [
        ('"kubectl-client-side-apply" using apps/v1', ".spec.replicas"),
        ('"kubectl-client-side-apply" using apps/v1',
         '.spec.template.spec.containers[name="web"].image'),
    ]  # fmt: skip
    # The same values are shared, not conflicts.
    _, shared = _apply(entries, _dep(), _dep())
    owners = _owners(shared)
    assert ".spec.replicas" in owners["kubectl/Apply"]
    assert ".spec.replicas" in owners["kubectl-client-side-apply/Update"]


def test_forcing_takes_the_conflicting_fields_over() -> None:
    entries = record((), None, _dep(), "Deployment", CSA, NOW)
    wanted, forced = _apply(entries, _dep(), _dep(replicas=4), force=True)
    assert wanted["spec"]["replicas"] == 4
    owners = _owners(forced)
    assert ".spec.replicas" in owners["kubectl/Apply"]
    assert ".spec.replicas" not in owners["kubectl-client-side-apply/Update"]


def test_apply_removes_what_it_no_longer_applies_unless_another_manager_owns_it() -> None:
    _, entries = _apply((), {}, _dep(args=["a"]))
    live = _dep(args=["a"])
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Always"  # a default
    dropped = _dep()
    del dropped["metadata"]["labels"]
    wanted = applied_object(entries, live, dropped, "Deployment", KUBECTL)
    container = wanted["spec"]["template"]["spec"]["containers"][0]
    assert "args" not in container and container["imagePullPolicy"] == "Always"
    assert wanted["metadata"] == {"name": "web", "uid": "u", "resourceVersion": "7"}
    assert wanted["status"] == {"replicas": 1}
    # Another manager's field stays though the applier drops it.
    other = record(entries, live, live, "Deployment", OTHER, NOW, config=_dep(args=["a"]))
    kept = applied_object(other, live, dropped, "Deployment", KUBECTL)
    assert kept["spec"]["template"]["spec"]["containers"][0]["args"] == ["a"]


def test_a_second_applier_of_the_same_values_shares_and_then_keeps_them() -> None:
    _, entries = _apply((), {}, _dep())
    _, entries = _apply(entries, _dep(), _dep(), who=OTHER)
    assert set(_owners(entries)) == {"kubectl/Apply", "other/Apply"}
    nothing = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    wanted = applied_object(entries, _dep(), nothing, "Deployment", KUBECTL)
    assert wanted["spec"]["replicas"] == 3


def test_conflict_messages_are_kubernetes_words() -> None:
    one = [Conflict('"a"', ".spec.replicas")]
    assert (
        conflict_message(one) == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    )
    two = [Conflict('"b"', ".x"), Conflict('"a"', ".y"), Conflict('"b"', ".z")]
    assert conflict_message(two) == (
        'Apply failed with 3 conflicts: conflicts with "a":\n- .y\nconflicts with "b":\n- .x\n- .z'
    )
    scale = ManagedFieldsEntry("kubectl", "Update", "apps/v1", NOW, "{}", "scale")
    assert describe(scale) == '"kubectl" with subresource "scale" using apps/v1'
    assert describe(ManagedFieldsEntry("kubectl", "Apply", "apps/v1", NOW, "{}")) == '"kubectl"'


def test_entries_a_client_sends_replace_the_ledger_only_when_readable() -> None:
    sent = {
        "metadata": {
            "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                 "time": "2023-11-14T22:13:20Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            ]
        }
    }  # fmt: skip
    entries = entries_from_request(sent)
    assert entries is not None and entries[0].time == NOW
    assert entry_fields(entries[0]) == {(f("spec"), f("replicas"))}
    assert entries_from_request({"metadata": {"managedFields": []}}) is None
    assert entries_from_request({"metadata": {}}) is None
    bad = {"metadata": {"managedFields": [{"operation": "Apply", "fieldsV1": {"x": {}}}]}}
    assert entries_from_request(bad) is None


def test_an_unreadable_stored_entry_owns_nothing() -> None:
    broken = ManagedFieldsEntry("x", "Update", "v1", NOW, "not json")
    assert entry_fields(broken) == frozenset()
    # ... so a write over it goes on, and the writer's entry is recorded beside it.
    entries = record((broken,), _dep(), _dep(replicas=4), "Deployment", CSA, NOW)
    assert [e.manager for e in entries] == ["kubectl-client-side-apply"]


def test_at_most_ten_update_entries_the_oldest_merge_into_ancient_changes() -> None:
    entries: tuple[ManagedFieldsEntry, ...] = ()
    old = _dep()
    labels = dict(old["metadata"]["labels"])
    for i in range(12):
        new = _dep(image=f"img{i}")
        labels[f"by-{i}"] = "x"  # each manager adds a label of its own and the image
        new["metadata"]["labels"] = dict(labels)
        writer = Manager(f"m{i}", "Update", "apps/v1")
        entries = record(entries, old, new, "Deployment", writer, NOW + i)
        old = new
    names = [e.manager for e in entries]
    assert len(names) == 10 and names[0] == "ancient-changes"
    assert names[1:] == [f"m{i}" for i in range(3, 12)]
    ancient = _owners(entries)["ancient-changes/Update"]
    # m0, m1 and m2 merged: what they still owned is kept; the image is m11's.
    assert {".metadata.labels.by-0", ".metadata.labels.by-1", ".metadata.labels.by-2"} <= ancient
    assert entries[0].time == NOW + 2
    assert not any("image" in p for p in ancient)


def _client_side_applied(replicas: int = 3) -> dict[str, Any]:
    """A deployment as `kubectl apply` (client-side) leaves it: its last-applied annotation."""
    live = _dep(replicas=replicas)
    last = _dep()
    for key in ("uid", "resourceVersion"):
        del last["metadata"][key]
    del last["status"]
    annotation = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(last)}
    live["metadata"]["annotations"] = annotation
    return live


def test_kubectl_takes_over_what_its_client_side_apply_set_without_conflicts() -> None:
    live = _client_side_applied()
    entries = record((), None, live, "Deployment", CSA, NOW)
    # Another manager changing a client-side-applied value conflicts ...
    with pytest.raises(FieldConflicts):
        _apply(entries, live, _dep(replicas=5), who=OTHER)
    # ... kubectl's server-side apply does not (Kubernetes' lastAppliedManager).
    wanted, upgraded = _apply(entries, live, _dep(replicas=5))
    assert wanted["spec"]["replicas"] == 5
    assert ".spec.replicas" in _owners(upgraded)["kubectl/Apply"]
    # A value changed since the client-side apply (a scale) still conflicts, by name.
    scaled = _client_side_applied(replicas=7)
    entries = record(entries, live, scaled, "Deployment", SCALE, NOW + 1)
    with pytest.raises(FieldConflicts) as refused:
        _apply(entries, scaled, _dep(replicas=5))
    assert [c.manager for c in refused.value.conflicts] == [
        '"kubectl" with subresource "scale" using apps/v1'
    ]


def test_a_status_write_owns_the_status_fields_it_changed_and_nothing_else() -> None:
    controller = Manager("kube-controller-manager", "Update", "apps/v1", "status")
    applied = record((), None, _dep(), "Deployment", KUBECTL, NOW, _dep())
    old = _dep()
    new = {**_dep(), "status": {"replicas": 3, "conditions": [{"type": "Available",
                                                              "status": "True"}]}}  # fmt: skip
    ledger = record(applied, old, new, "Deployment", controller, NOW)
    owners = _owners(ledger)
    assert owners["kubectl/Apply"] == _owners(applied)["kubectl/Apply"]  # spec untouched
    assert owners["kube-controller-manager/Update/status"] == {
        ".status.replicas",
        '.status.conditions[type="Available"]',
        '.status.conditions[type="Available"].type',
        '.status.conditions[type="Available"].status',
    }
    # The entry reads as kube-controller-manager's does on Kubernetes.
    entry = next(e for e in ledger if e.subresource == "status")
    assert (entry.manager, entry.operation, entry.api_version) == (
        "kube-controller-manager", "Update", "apps/v1"
    )  # fmt: skip
    assert json.loads(entry.fields_v1)["f:status"]["f:conditions"] == {
        'k:{"type":"Available"}': {".": {}, "f:status": {}, "f:type": {}}
    }
    # A main-resource write leaves the status entry alone; a status write no spec entry.
    rescaled = record(ledger, new, {**new, "spec": {**new["spec"], "replicas": 5}},
                      "Deployment", SCALE, NOW)  # fmt: skip
    assert (
        _owners(rescaled)["kube-controller-manager/Update/status"]
        == (owners["kube-controller-manager/Update/status"])
    )


def _create_fields(obj: dict[str, Any], manager: Manager = CSA) -> set[str]:
    """The fields a create of `obj` gives its manager, as paths."""
    return {path_string(p) for e in record((), None, obj, "Deployment", manager, NOW) for p in
            entry_fields(e)}  # fmt: skip


def test_creates_of_the_same_shape_share_fields_and_other_shapes_get_their_own() -> None:
    # The fields of a create are remembered by the object's skeleton (the master writes
    # thousands alike): values alone change nothing, keys and list items do.
    first = _create_fields(_dep(replicas=3, image="nginx"))
    assert _create_fields(_dep(replicas=5, image="httpd")) == first
    renamed = _dep()
    renamed["spec"]["template"]["spec"]["containers"][0]["name"] = "api"
    assert '.spec.template.spec.containers[name="api"].image' in _create_fields(renamed)
    assert '.spec.template.spec.containers[name="api"].image' not in first
    extra = _create_fields(_dep(command=["sh"]))
    assert '.spec.template.spec.containers[name="web"].command' in extra - first
    labelled = _dep()
    labelled["metadata"]["labels"]["tier"] = "web"
    assert _create_fields(labelled) - first == {".metadata.labels.tier"}
    emptied = _dep()
    emptied["metadata"]["labels"] = {}
    assert ".metadata.labels" in _create_fields(emptied)
    assert ".metadata.labels.app" not in _create_fields(emptied)


def test_a_skeleton_keeps_what_fields_depend_on() -> None:
    from master.api.managedfields import skeleton

    assert skeleton({"a": 1, "b": "x"}) == skeleton({"a": 2, "b": "y"})
    assert skeleton({"a": None}) != skeleton({"a": 1})
    assert skeleton({"a": {}}) != skeleton({"a": 1})
    assert skeleton({"a": [{"name": "x"}]}) != skeleton({"a": [{"name": "y"}]})


def test_an_update_of_equal_parts_changes_only_what_differs() -> None:
    old = _dep()
    new = _dep(replicas=4)
    entries = record((), None, old, "Deployment", CSA, NOW)
    after = record(entries, old, new, "Deployment", SCALE, NOW)
    assert _owners(after)["kubectl/Update/scale"] == {".spec.replicas"}


def _reference_skeleton(value: Any) -> object:
    """The skeleton as first written (one generator per map): the fast one must equal it."""
    if isinstance(value, dict):
        return ("d", *((name, _reference_skeleton(child)) for name, child in value.items()))
    if isinstance(value, list):
        return ("l", json.dumps(value, sort_keys=True, default=repr))
    return None if value is None else 1


def test_a_skeleton_equals_the_reference_walk_on_random_values() -> None:
    import random

    from master.api.managedfields import skeleton

    rng = random.Random(7)
    leaves: list[Any] = [None, 0, 1, "", "x", True, False, 2.5, {}, [], [{"name": "a"}], ["s"]]

    def value(depth: int) -> Any:
        if depth > 3 or rng.random() < 0.3:
            return rng.choice(leaves)
        return {rng.choice("abcdef"): value(depth + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(2000):
        v = value(0)
        assert skeleton(v) == _reference_skeleton(v), v
    assert skeleton(_dep()) == _reference_skeleton(_dep())


def test_ten_update_managers_stay_as_they_are_and_an_eleventh_merges() -> None:
    entries: tuple[ManagedFieldsEntry, ...] = ()
    old = _dep()
    for i in range(11):
        new = _dep(replicas=i + 10)
        new["metadata"]["labels"] = {**old["metadata"]["labels"], f"by-{i}": "x"}
        entries = record(entries, old, new, "Deployment", Manager(f"m{i}", "Update", "apps/v1"),
                         NOW + i)  # fmt: skip
        old = new
        if i < 10:
            assert [e.manager for e in entries] == [f"m{j}" for j in range(i + 1)]
    assert entries[0].manager == "ancient-changes"
    assert len(entries) == 10


def test_a_create_without_a_ledger_records_what_the_general_path_records() -> None:
    # A create with no entries returns early; with an entry of another manager (owning an
    # unrelated field) the general path runs: the creator's entry must be the same.
    other = ManagedFieldsEntry("other", "Update", "apps/v1", NOW, '{"f:spec":{"f:paused":{}}}')
    for obj in (_dep(), _dep(replicas=7, command=["sh"]), _client_side_applied()):
        alone = record((), None, obj, "Deployment", CSA, NOW)
        beside = record((other,), None, obj, "Deployment", CSA, NOW)
        assert alone == tuple(e for e in beside if e.manager != "other")
        assert [e.manager for e in alone] == ["kubectl-client-side-apply"]
    bare = {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "a", "uid": "u"}}
    assert record((), None, bare, "Thing", CSA, NOW) == ()  # owns nothing: no entry
