"""Property-based: bad manifests and bad requests thrown at a RUNNING master (TLS, admin creds).

Hypothesis generates inputs that must be refused (each strategy breaks a valid
Deployment in a way validation has to catch, or is raw junk); every call must
end in a clean gRPC status — never UNKNOWN (an unhandled exception), never a
dropped connection — the store must be exactly as before (names and resource
versions of every object, every kind), and the master must still serve a good
apply afterwards.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protos import cluster_pb2 as pb
from protos import cluster_pb2_grpc
from tests.integration.cluster import LocalCluster
from tests.integration.security_helpers import admin_channel
from tests.support import SEED as SEED_DIR

pytestmark = pytest.mark.integration

SEED = SEED_DIR / "deployment.yaml"
KINDS = ("Deployment", "Service", "Pod", "Node", "Event")
CLEAN_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _base() -> dict[str, Any]:
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fuzz"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "fuzz"}},
            "template": {
                "metadata": {"labels": {"app": "fuzz"}},
                "spec": {"containers": [{"name": "c", "image": "pinnace/httpd:latest"}]},
            },
        },
    }
    return doc


def _with(path: str, value: Any) -> bytes:
    doc = copy.deepcopy(_base())
    *parents, last = path.split(".")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return yaml.safe_dump(doc).encode()


_CONTAINER = "spec.template.spec.containers.0"
_non_integer = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f))


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _laugh(i: int) -> bytes:
    this, prev = chr(98 + i), chr(97 + i)
    return f"{this}: &{this} [*{prev},*{prev},*{prev},*{prev}]\n".encode()


_BILLION_LAUGHS = b"a: &a [x,x,x,x,x,x,x,x,x]\n" + b"".join(_laugh(i) for i in range(12))

BAD_MANIFESTS = st.one_of(
    st.text(alphabet=LETTERS, min_size=254, max_size=400).map(lambda n: _with("metadata.name", n)),
    st.text(alphabet="ABC_ .!", min_size=1, max_size=20).map(lambda n: _with("metadata.name", n)),
    st.integers(max_value=-1).map(lambda r: _with("spec.replicas", r)),
    st.integers(min_value=10_001, max_value=2**70).map(lambda r: _with("spec.replicas", r)),
    st.text(alphabet=LETTERS, min_size=1, max_size=10).map(lambda r: _with("spec.replicas", r)),
    _non_integer.map(lambda r: _with("spec.replicas", r)),
    st.integers(max_value=0).map(lambda p: _with(f"{_CONTAINER}.ports", [{"containerPort": p}])),
    st.integers(min_value=65536).map(
        lambda p: _with(f"{_CONTAINER}.ports", [{"containerPort": p}])
    ),
    st.text(max_size=5).map(
        lambda v: _with(f"{_CONTAINER}.env", [{"name": "A", "value": v + "\0"}])
    ),
    st.sampled_from(["", None, 7, []]).map(lambda i: _with(f"{_CONTAINER}.image", i)),
    st.sampled_from(["v2", "apps/v2", "", "extensions/v1beta1"]).map(
        lambda a: _with("apiVersion", a)
    ),
    st.text(alphabet=LETTERS, min_size=1, max_size=8).map(
        lambda v: _with("spec.selector.matchLabels", {"app": v + "-other"})
    ),
    st.integers(min_value=41, max_value=400).map(lambda d: _with("metadata.labels", _nested(d))),
    st.sampled_from([_BILLION_LAUGHS, b"x" * (1024 * 1024 + 1), b"\x00\xff\xfe", b"kind: [x\n"]),
    # one good document and one bad one: nothing of the file may be stored
    st.integers(max_value=-1).map(
        lambda r: yaml.safe_dump(_base()).encode() + b"---\n" + _with("spec.replicas", r)
    ),
)


def _snapshot(stub: cluster_pb2_grpc.ClusterServiceStub) -> dict[str, list[tuple[str, str]]]:
    found = {}
    for kind in KINDS:
        reply = stub.GetObjects(pb.GetObjectsRequest(kind=kind), timeout=10)
        objs = [json.loads(o.json)["metadata"] for o in reply.objects]
        found[kind] = sorted((m["name"], str(m.get("resourceVersion"))) for m in objs)
    return found


def _settled_snapshot(
    stub: cluster_pb2_grpc.ClusterServiceStub, quiet: float = 1.0, within: float = 60.0
) -> dict[str, list[tuple[str, str]]]:
    """The snapshot once it stayed the same for `quiet` seconds (read every 0.2 s)."""
    deadline = time.monotonic() + within
    last = _snapshot(stub)
    since = time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"the cluster never went quiet for {quiet} s: {last}")
        time.sleep(0.2)
        now = _snapshot(stub)
        if now != last:
            last, since = now, time.monotonic()
    return last


def _code(call: Any, request: Any) -> grpc.StatusCode:
    try:
        call(request, timeout=10)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_a_running_master_refuses_bad_input_cleanly_and_stays_intact(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    keep = tmp_path / "keep.yaml"
    keep.write_bytes(SEED.read_bytes())
    cluster.cli("apply", "-f", str(keep))
    channel = admin_channel(cluster)
    stub = cluster_pb2_grpc.ClusterServiceStub(channel)
    # The controllers finish what the apply started (pods, events, the Deployment's status
    # after them) before the state is taken: a write of theirs after it is not the fuzz's.
    before = _settled_snapshot(stub)
    existing = {name for names in before.values() for name, _ in names}
    fuzz_settings = settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

    @fuzz_settings
    @given(BAD_MANIFESTS)
    def bad_manifests_are_refused(content: bytes) -> None:
        request = pb.ApplyManifestsRequest(files=[pb.SourceFile(name="fuzz.yaml", content=content)])
        try:
            stub.ApplyManifests(request, timeout=10)
        except grpc.RpcError as e:
            assert e.code() in CLEAN_ERRORS, (e.code(), e.details())
            assert "\n" not in (e.details() or "")
        else:
            raise AssertionError(f"a bad manifest was accepted: {content[:200]!r}")

    @fuzz_settings
    @given(st.binary(max_size=2000))
    def junk_is_refused_or_empty(content: bytes) -> None:
        request = pb.ApplyManifestsRequest(files=[pb.SourceFile(name="junk", content=content)])
        try:
            reply = stub.ApplyManifests(request, timeout=10)
        except grpc.RpcError as e:
            assert e.code() in CLEAN_ERRORS, (e.code(), e.details())
        else:
            assert not reply.results, f"junk stored objects: {content!r}"

    names = st.text(max_size=300).filter(lambda n: n not in existing)

    @fuzz_settings
    @given(
        kind=st.text(max_size=40),
        name=names,
        replicas=st.integers(min_value=-(2**63), max_value=2**63 - 1),
        labels=st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=3),
    )
    def bad_requests_are_refused(
        kind: str, name: str, replicas: int, labels: dict[str, str]
    ) -> None:
        calls = [
            (stub.GetObjects, pb.GetObjectsRequest(kind=kind, name=name, label_selector=labels)),
            (stub.DeleteObjects, pb.DeleteObjectsRequest(kind=kind, name=name)),
            (stub.DeleteObjects, pb.DeleteObjectsRequest(kind="Deployment", name=name)),
            (stub.ScaleDeployment, pb.ScaleDeploymentRequest(name=name, replicas=replicas)),
            (
                stub.RollbackDeployment,
                pb.RollbackDeploymentRequest(name=name, to_revision=replicas),
            ),
        ]
        for call, request in calls:
            code = _code(call, request)
            assert code in CLEAN_ERRORS | {grpc.StatusCode.OK}, (call, request, code)

    @fuzz_settings
    @given(
        st.binary(max_size=500),
        st.sampled_from(list(pb.DESCRIPTOR.services_by_name["ClusterService"].methods_by_name)),
    )
    def raw_bytes_are_refused(payload: bytes, method: str) -> None:
        if method == "WatchObjects":
            return  # a stream: covered by the unary calls' decoding path
        call = channel.unary_unary(f"/pinnace.v1.ClusterService/{method}")
        code = _code(call, payload)
        assert code != grpc.StatusCode.UNKNOWN and code != grpc.StatusCode.UNAVAILABLE, code

    bad_manifests_are_refused()
    junk_is_refused_or_empty()
    bad_requests_are_refused()
    raw_bytes_are_refused()

    # oversized: one message over the master's 8 MiB limit is refused, not swallowed
    huge = pb.ApplyManifestsRequest(files=[pb.SourceFile(name="huge", content=b"a" * (9 << 20))])
    assert _code(stub.ApplyManifests, huge) == grpc.StatusCode.RESOURCE_EXHAUSTED

    assert _snapshot(stub) == before
    good = cluster.cli("apply", "-f", str(keep))
    assert "unchanged" in good.stdout or "configured" in good.stdout
    assert cluster.master_proc is not None and cluster.master_proc.poll() is None
