"""The store codec remembers the encoding of values many objects share (a PodSpec).

The pods of one Deployment hold its template's PodSpec object itself; the codec
encodes it once per object, not once per pod. These tests fail if a remembered
answer is ever given for another value (a changed spec, a new one) or for a
value that does not encode, or if the bytes differ from encoding each spec anew.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from master.model import Container, ContainerPort, ObjectMeta, Pod, PodSpec
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
