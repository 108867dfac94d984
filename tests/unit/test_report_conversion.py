"""pod_report_from_proto carries every reported field to the model field of its name.

The conversion builds its dataclasses with positional arguments (every pod's report passes
it: master/api/convert.py); these tests fill every proto field with a value no other field
has, so a positional argument in the wrong place fails here."""

from __future__ import annotations

import dataclasses

from master.api.convert import pod_report_from_proto
from master.model import ContainerState, ContainerStatus, PodPhase, PodStatus
from protos import node_pb2


def _container(n: int) -> node_pb2.ContainerStatusReport:
    return node_pb2.ContainerStatusReport(
        name=f"name{n}",
        state="terminated",
        reason=f"reason{n}",
        message=f"message{n}",
        ready=True,
        restart_count=10 + n,
        container_id=f"cid{n}",
        image=f"image{n}",
        exit_code=20 + n,
        started_at=30.5 + n,
        image_note=f"note{n}",
        image_id=f"imageid{n}",
    )


def _report() -> node_pb2.PodStatusReport:
    sent = node_pb2.PodStatusReport(
        pod_name="pod",
        epoch=7,
        phase="Failed",
        reason="PodReason",
        message="pod message",
        host_ip="10.0.0.7",
        port_map={"80/TCP": 30001, "53/UDP": 30002},
        containers=[_container(1), _container(2)],
        ready=True,
        started_at=1234.5,
        removed=True,
        namespace="team",
        pod_ip="172.17.0.9",
    )
    return node_pb2.PodStatusReport.FromString(sent.SerializeToString())


def test_every_container_field_is_its_reported_field() -> None:
    sent = _report()

    status = pod_report_from_proto(sent).status

    assert len(status.container_statuses) == 2
    for got, was in zip(status.container_statuses, sent.containers, strict=True):
        for f in dataclasses.fields(ContainerStatus):
            value = getattr(got, f.name)
            expected = getattr(was, f.name)
            if f.name == "state":
                assert value is ContainerState.TERMINATED
            else:
                assert value == expected, f.name


def test_every_status_and_report_field_is_its_reported_field() -> None:
    sent = _report()

    report = pod_report_from_proto(sent)

    assert (report.pod_name, report.epoch, report.removed, report.namespace) == (
        "pod",
        7,
        True,
        "team",
    )
    status = report.status
    for f in dataclasses.fields(PodStatus):
        value = getattr(status, f.name)
        if f.name == "phase":
            assert value is PodPhase.FAILED
        elif f.name == "port_map":
            assert value == {"80/TCP": 30001, "53/UDP": 30002}
        elif f.name == "container_statuses":
            assert [c.name for c in value] == ["name1", "name2"]
        else:
            assert value == getattr(sent, f.name), f.name


def test_an_empty_report_takes_the_defaults() -> None:
    report = pod_report_from_proto(node_pb2.PodStatusReport(pod_name="p"))

    assert report.namespace == "default"
    assert report.status == PodStatus(phase=PodPhase.UNKNOWN)
    assert report.status.port_map == {}
