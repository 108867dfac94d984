"""pod_status_from_proto shares the strings many pods' statuses repeat (interned)."""

from __future__ import annotations

from master.api.convert import pod_status_from_proto
from protos import node_pb2


def _report(pod: str) -> node_pb2.PodStatusReport:
    # Each report parsed from bytes, as the master gets them: its strings are fresh copies.
    sent = node_pb2.PodStatusReport(
        pod_name=pod,
        phase="Running",
        reason="Started",
        host_ip="10.0.0.7",
        port_map={"80/TCP": 30001},
        containers=[
            node_pb2.ContainerStatusReport(
                name="web",
                state="running",
                reason="Started",
                image="nginx:1.25",
                image_id="sha256:" + "ab" * 32,
                container_id=pod + "-cid",
            )
        ],
    )
    return node_pb2.PodStatusReport.FromString(sent.SerializeToString())


def test_two_pods_statuses_hold_one_copy_of_each_repeated_string() -> None:
    a = pod_status_from_proto(_report("a"))
    b = pod_status_from_proto(_report("b"))

    assert a.host_ip == "10.0.0.7" and a.host_ip is b.host_ip
    assert a.reason == "Started" and a.reason is b.reason
    (key_a,), (key_b,) = a.port_map, b.port_map
    assert key_a == "80/TCP" and key_a is key_b
    ca, cb = a.container_statuses[0], b.container_statuses[0]
    assert ca.name == "web" and ca.name is cb.name
    assert ca.image == "nginx:1.25" and ca.image is cb.image
    assert ca.image_id == "sha256:" + "ab" * 32 and ca.image_id is cb.image_id
    assert ca.reason is cb.reason


def test_values_are_unchanged() -> None:
    status = pod_status_from_proto(_report("a"))

    assert status.port_map == {"80/TCP": 30001}
    assert status.container_statuses[0].container_id == "a-cid"
