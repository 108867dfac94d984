"""model.evolve: what dataclasses.replace gives, for metadata and every stored kind.

`evolve` copies field by field instead of going through the generic `replace`
(state.put and the managedFields ledger do it on every write). It is only right
while the classes it copies have nothing `replace` would run besides `__init__`'s
assignments: these tests fail when a stored kind gains a `__post_init__` or an
`init=False` field, when a field would be dropped or shared wrongly, and when an
unknown name would pass silently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any

import pytest

from master.model import (
    KINDS,
    Container,
    Event,
    ManagedFieldsEntry,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    evolve,
)


def _every_field_distinct(cls: type) -> Any:
    """An instance of `cls` whose fields each hold their own marker object."""
    obj: Any = object.__new__(cls)
    for fld in dataclasses.fields(cls):
        object.__setattr__(obj, fld.name, object())
    return obj


@pytest.mark.parametrize("cls", [ObjectMeta, *KINDS.values()], ids=lambda c: c.__name__)
def test_classes_have_nothing_replace_would_run_besides_assignments(cls: type) -> None:
    assert not hasattr(cls, "__post_init__")
    assert all(fld.init for fld in dataclasses.fields(cls))
    assert tuple(fld.name for fld in dataclasses.fields(cls)) == vars(cls)["__slots__"]


@pytest.mark.parametrize("cls", list(KINDS.values()), ids=lambda c: c.__name__)
def test_evolve_equals_replace_for_every_kind(cls: type) -> None:
    obj = _every_field_distinct(cls)
    meta = ObjectMeta(name="new")
    ours, theirs = evolve(obj, meta=meta), replace(obj, meta=meta)
    for fld in dataclasses.fields(cls):
        assert getattr(ours, fld.name) is getattr(theirs, fld.name), fld.name
    assert ours is not obj
    assert obj.meta is not meta


def test_evolve_of_metadata_and_a_pod_equals_replace() -> None:
    entry = ManagedFieldsEntry("kubelet", "Update", "v1", 1.0, "{}", "status")
    meta = ObjectMeta(name="web-1", labels={"app": "web"}, managed_fields=(entry,))
    pod = Pod(meta=meta, spec=PodSpec(containers=(Container(name="c", image="nginx"),)))
    changed = evolve(meta, uid="u-1", resource_version=7, managed_fields=())
    assert changed == replace(meta, uid="u-1", resource_version=7, managed_fields=())
    assert meta.managed_fields == (entry,)  # the original is untouched
    running = evolve(pod, meta=changed, status=PodStatus(reason="Running"))
    assert running == replace(pod, meta=changed, status=PodStatus(reason="Running"))
    assert type(running) is Pod
    assert evolve(pod) == pod


def test_evolve_refuses_an_unknown_field() -> None:
    event = Event(ObjectMeta(name="e"), "Pod", "p", "Scheduled", "assigned p to n1")
    with pytest.raises(TypeError, match="no field 'nodename'"):
        evolve(event, nodename="n1")
