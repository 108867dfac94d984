"""The store codec remembers the encoding of values many objects share (a PodSpec).

The pods of one Deployment hold its template's PodSpec object itself; the codec
encodes it once per object, not once per pod. These tests fail if a remembered
answer is ever given for another value (a changed spec, a new one) or for a
value that does not encode, or if the bytes differ from encoding each spec anew.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from master.model import (
    Container,
    ContainerPort,
    Event,
    ManagedFieldsEntry,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
)
from master.store import codec
from master.store.codec import CodecError, decode, encode


def _spec(image: str = "nginx:1") -> PodSpec:
    return PodSpec(containers=(Container(name="web", image=image, ports=(ContainerPort(80),)),))


def _pod(name: str, spec: PodSpec) -> Pod:
    return Pod(ObjectMeta(name=name, labels={"app": "web"}), spec, owner="web")


def test_pods_sharing_a_spec_encode_as_pods_with_their_own_equal_specs() -> None:
    shared = _spec()
    together = [encode(_pod(f"web-{i}", shared)) for i in range(5)]
    apart = [encode(_pod(f"web-{i}", _spec())) for i in range(5)]
    assert together == apart
    assert decode("Pod", together[3]) == _pod("web-3", shared)


def test_a_changed_or_new_spec_is_encoded_for_itself() -> None:
    shared = _spec("nginx:1")
    first = encode(_pod("web-1", shared))
    changed = replace(shared, containers=(replace(shared.containers[0], image="nginx:2"),))
    assert b"nginx:2" in encode(_pod("web-1", changed))
    assert encode(_pod("web-1", shared)) == first
    for i in range(codec.SHARED_MEMO + 5):  # more specs than it remembers
        assert f"img-{i}".encode() in encode(_pod("web-1", _spec(f"img-{i}")))
    assert encode(_pod("web-1", shared)) == first


def test_a_spec_that_does_not_encode_fails_every_time() -> None:
    bad = replace(_spec(), containers=(replace(_spec().containers[0], image=3),))  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(CodecError, match="image"):
            encode(_pod("web-1", bad))


def _entry(manager: str, subresource: str = "") -> ManagedFieldsEntry:
    return ManagedFieldsEntry(manager, "Update", "v1", 1.0, '{"f:spec":{"f:x":{}}}', subresource)


def _plain(obj: Pod) -> object:
    """The JSON value of `obj` as the codec makes it, serialised in one piece."""
    return json.loads(codec._DUMPS(codec._codec_for(Pod).encode(obj)))


def test_a_spec_written_from_its_remembered_text_is_the_object_s_json() -> None:
    """The spec's text and the ledger's are spliced into each pod's JSON: the same JSON
    value as the pod serialised whole, whichever specs, ledgers, names and statuses,
    remembered or not."""
    rng = random.Random(3)
    specs = [_spec(f"nginx:{i}") for i in range(5)]
    specs.append(PodSpec(containers=()))  # (every other field at its default)
    ledgers = [(), (_entry("a"),), (_entry("a"), _entry("b", "status"))]
    for i in range(3 * codec.SHARED_MEMO):
        spec = rng.choice(specs) if rng.random() < 0.7 else _spec(f"img-{rng.randrange(9)}")
        pod = replace(
            _pod(f"web-{i}", spec),
            node_name=rng.choice(["", "n1"]),
            status=PodStatus(phase=PodPhase.RUNNING, message="é\n\"'"),
        )
        if rng.random() < 0.6:
            ledger = rng.choice(ledgers) if rng.random() < 0.7 else (_entry(f"m{i}"),)
            pod = replace(pod, meta=replace(pod.meta, managed_fields=ledger))
        data = encode(pod)
        assert json.loads(data) == _plain(pod)
        assert decode("Pod", data) == pod


def test_an_event_with_a_shared_ledger_is_its_json() -> None:
    ledger = (_entry("kube-scheduler"),)
    for i in range(3):
        event = Event(ObjectMeta(name=f"e{i}", managed_fields=ledger), "Pod", "web", "Scheduled",
                      "assigned", "Normal", 1, 5.0, 5.0, "master")  # fmt: skip
        data = encode(event)
        assert json.loads(data) == json.loads(codec._DUMPS(codec._codec_for(Event).encode(event)))
        assert decode("Event", data) == event
