"""A creation's managedFields are remembered by its form (fieldowners.creation_form).

The master creates thousands of pods and events a second at scale; their ledgers are
the same for every creation of one form in one second, so they are computed once per
form, writer and second. What must hold: objects of one form get the ledger the full
computation gives each of them (field by field, every field of the kind varied), and
objects the full computation tells apart are of different forms.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from master.api import fieldowners
from master.api.fieldowners import _recorded, creation_form, writer_fields
from master.api.render import render_object
from master.model import (
    Container,
    ContainerPort,
    Event,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    StoredObject,
)
from master.writers import CONTROLLER_MANAGER, KUBELET, SCHEDULER

NOW = 1_800_000_000.25

SPEC = PodSpec(containers=(Container(name="c", image="nginx:latest", ports=(ContainerPort(80),)),))
OTHER_SPEC = PodSpec(containers=(Container(name="c", image="nginx:latest", command=("sh",)),))
META = ObjectMeta(name="web-1", uid="u1", labels={"app": "web"}, created_at=NOW, namespace="ns")

# Per field, values a creation may carry (the first is the base's).
_SCALARS: dict[type, list[Any]] = {
    str: ["x", "", "Deployment/web", "Warning"],
    int: [0, 1, 7, -1],
    float: [0.0, NOW, -1.0],
}
_META_VALUES: dict[str, list[Any]] = {
    "name": ["web-1", "web-2"],
    "uid": ["u1", "", "u2"],
    "labels": [{"app": "web"}, {}, {"app": "web", "pod-template-hash": "abc"}, {"app": "db"}],
    "annotations": [{}, {"note": "1"}, {"note": "2"}],
    "resource_version": [0, 12],
    "generation": [1, 3],
    "created_at": [NOW, 0.0],
    "namespace": ["ns", "default"],
}


def _variants(base: StoredObject, skip: tuple[str, ...], extra: dict[str, list[Any]]) -> list[Any]:
    """`base` with one field at a time (of the object and of its metadata) changed."""
    out: list[Any] = [base]
    for name, values in _META_VALUES.items():
        out += [dataclasses.replace(base, meta=dataclasses.replace(base.meta, **{name: v}))
                for v in values]  # fmt: skip
    for f in dataclasses.fields(base):
        if f.name in ("meta", *skip):
            continue
        values = extra.get(f.name) or _SCALARS[type(getattr(base, f.name))]
        out += [dataclasses.replace(base, **{f.name: v}) for v in values]
    return out


def _event(**changes: Any) -> Event:
    base = Event(META, "Pod", "web-1", "Scheduled", "assigned web-1 to n1", "Normal", 1, NOW,
                 NOW, "master")  # fmt: skip
    return dataclasses.replace(base, **changes)


EVENTS = _variants(_event(), (), {})
PODS = _variants(
    Pod(META, SPEC, owner="web", template_hash="abc"),
    (),
    {"spec": [SPEC, OTHER_SPEC], "status": [PodStatus(), PodStatus(reason="ContainerCreating")]},
)


@pytest.mark.parametrize("objects", [EVENTS, PODS], ids=["events", "pods"])
@pytest.mark.parametrize("writer", [CONTROLLER_MANAGER, SCHEDULER, KUBELET])
def test_one_form_is_one_ledger_and_the_full_computation_agrees(
    objects: list[StoredObject], writer: str
) -> None:
    fieldowners._CREATED_LEDGERS.clear()
    full = [_recorded(None, o, writer, "", NOW) for o in objects]
    for (a, la), (b, lb) in itertools.combinations(zip(objects, full, strict=True), 2):
        if creation_form(a) == creation_form(b):
            assert la == lb, (a, b)
    # Remembered or not, in any order: what the full computation says.
    for o, ledger in zip([*objects, *reversed(objects)], [*full, *reversed(full)], strict=True):
        assert writer_fields(None, o, writer, "", NOW) == ledger


def test_a_template_s_pods_and_a_second_s_events_are_rendered_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fieldowners._CREATED_LEDGERS.clear()
    rendered: list[str] = []
    real = render_object

    def counting(obj: StoredObject, now: float) -> dict[str, Any]:
        rendered.append(obj.kind)
        return real(obj, now)

    monkeypatch.setattr(fieldowners, "render_object", counting)
    labels = {"app": "web", "pod-template-hash": "abc"}  # one mapping a pass's pods share
    for i in range(100):
        meta = ObjectMeta(name=f"web-{i}", labels=labels, annotations={}, namespace="ns")
        pod = Pod(meta, SPEC, owner="web", template_hash="abc")
        writer_fields(None, pod, CONTROLLER_MANAGER, "", NOW + i / 1000)
        event = _event(meta=ObjectMeta(name=f"web-{i}.{i}"), involved_name=f"web-{i}",
                       message=f"assigned web-{i} to n{i}")  # fmt: skip
        writer_fields(None, event, SCHEDULER, "", NOW + i / 1000)
    assert rendered == ["Pod", "Event"]

    writer_fields(None, pod, CONTROLLER_MANAGER, "", NOW + 1)  # the next second's time
    assert rendered == ["Pod", "Event", "Pod"]
