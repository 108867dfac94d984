"""`pinnace apply`'s own wire codec (master/cli/apply_wire.py) against the generated classes.

The request must be the bytes protos/cluster_pb2 writes, the reply read as cluster_pb2
reads it, and a change to these messages in protos/cluster.proto must fail here first
(the codec would otherwise drop or misread the new field without a word).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from master.cli import apply_wire
from master.cli.apply_wire import ApplyRequest, ObjectResult, SourceFile, WireError
from protos import cluster_pb2

texts = st.text(max_size=40)
sources = st.builds(SourceFile, name=texts, content=st.binary(max_size=300))
requests = st.builds(
    ApplyRequest, files=st.lists(sources, max_size=4).map(tuple), dry_run=st.booleans(),
    namespace=texts,
)  # fmt: skip
results = st.builds(ObjectResult, kind=texts, name=texts, action=texts, namespace=texts)


def _fields(message: type) -> list[tuple[int, str, int, bool]]:
    return [
        (f.number, f.name, f.type, f.is_repeated)
        for f in message.DESCRIPTOR.fields  # type: ignore[attr-defined]
    ]


def test_the_messages_are_the_ones_the_codec_was_written_for() -> None:
    d = cluster_pb2.DESCRIPTOR.services_by_name["ClusterService"].methods_by_name["ApplyManifests"]
    assert f"/{d.containing_service.full_name}/{d.name}" == apply_wire.METHOD
    assert d.input_type.name == "ApplyManifestsRequest"
    assert d.output_type.name == "ApplyManifestsResponse"
    string, bytes_, boolean, message = 9, 12, 8, 11
    assert _fields(cluster_pb2.ApplyManifestsRequest) == [
        (1, "files", message, True),
        (2, "dry_run", boolean, False),
        (3, "namespace", string, False),
    ]
    assert _fields(cluster_pb2.SourceFile) == [
        (1, "name", string, False),
        (2, "content", bytes_, False),
    ]
    assert _fields(cluster_pb2.ApplyManifestsResponse) == [
        (1, "results", message, True),
        (2, "warnings", string, True),
    ]
    assert _fields(cluster_pb2.ObjectResult) == [
        (1, "kind", string, False),
        (2, "name", string, False),
        (3, "action", string, False),
        (4, "namespace", string, False),
    ]


@given(requests)
def test_a_request_is_encoded_as_the_generated_class_encodes_it(request: ApplyRequest) -> None:
    generated = cluster_pb2.ApplyManifestsRequest(
        files=[cluster_pb2.SourceFile(name=f.name, content=f.content) for f in request.files],
        dry_run=request.dry_run,
        namespace=request.namespace,
    )

    encoded = apply_wire.encode_request(request)

    assert encoded == generated.SerializeToString(deterministic=True)
    assert cluster_pb2.ApplyManifestsRequest.FromString(encoded) == generated


@given(st.lists(results, max_size=5), st.lists(texts, max_size=3))
def test_a_reply_is_read_as_the_generated_class_reads_it(
    objects: list[ObjectResult], warnings: list[str]
) -> None:
    sent = cluster_pb2.ApplyManifestsResponse(
        results=[
            cluster_pb2.ObjectResult(
                kind=r.kind, name=r.name, action=r.action, namespace=r.namespace
            )
            for r in objects
        ],
        warnings=warnings,
    )

    reply = apply_wire.decode_response(sent.SerializeToString())

    assert reply.results == tuple(objects)
    assert reply.warnings == tuple(warnings)


def test_a_reply_from_a_newer_master_skips_what_it_does_not_know() -> None:
    # Fields this CLI does not know, of every wire type, before and inside a result.
    result = cluster_pb2.ObjectResult(kind="Deployment", name="web", action="created")
    unknown = (
        b"\x28\x96\x01"  # field 5, varint 150
        + b"\x31" + b"\x00" * 8  # field 6, 64-bit
        + b"\x3a\x03abc"  # field 7, length-delimited
        + b"\x45" + b"\x00" * 4  # field 8, 32-bit
    )  # fmt: skip
    body = unknown + result.SerializeToString()
    data = unknown + b"\x0a" + bytes([len(body)]) + body + b"\x12\x02hi"

    reply = apply_wire.decode_response(data)

    assert reply.results == (ObjectResult("Deployment", "web", "created"),)
    assert reply.warnings == ("hi",)
    assert cluster_pb2.ApplyManifestsResponse.FromString(data).warnings == ["hi"]


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05ab",  # a length past the end
        b"\x12\x02\xff\xfe",  # a warning that is not UTF-8
        b"\x0a",  # a key without its length
        b"\x0b",  # a group (wire type 3)
        b"\x02\x00",  # field number 0
    ],
)
def test_a_reply_that_is_not_a_response_is_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        apply_wire.decode_response(data)
