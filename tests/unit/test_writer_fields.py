"""The master's own writes carry managedFields under Kubernetes' writers' names.

A real ClusterState on a MemoryStore with the server's bookkeeping
(master/api/fieldowners.writer_fields), the controller manager and the node
servicer driven as an agent drives them, a fake clock: pods a Deployment makes
are kube-controller-manager's Update, the agent's status reports kubelet's
status Update, an unschedulable pod kube-scheduler's, and each event its
writer's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kernel.clock import FakeClock
from master.api.fieldowners import writer_fields
from master.api.fieldsets import path_string
from master.api.managedfields import entry_fields
from master.api.node_servicer import NodeServicer
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import (
    Container,
    Deployment,
    Event,
    ObjectMeta,
    PodSpec,
    PodTemplate,
    Resources,
    StoredObject,
)
from master.state import ClusterState
from master.store import MemoryStore
from protos import node_pb2

NOW = 1_800_000_000.0


def _owners(obj: StoredObject | None) -> dict[str, set[str]]:
    assert obj is not None
    return {
        f"{e.manager}/{e.operation}/{e.api_version}/{e.subresource}": {
            path_string(p) for p in entry_fields(e)
        }
        for e in obj.meta.managed_fields
    }


def _register(servicer: NodeServicer, *reports: node_pb2.PodStatusReport) -> None:
    info = node_pb2.NodeInfo(
        name="n1",
        address="127.0.0.1",
        capacity=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
        allocatable=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
        labels={"disk": "ssd"},
    )
    context: Any = None  # valid input never touches the context
    request = node_pb2.RegisterNodeRequest(node=info, pods=list(reports))
    asyncio.run(servicer.RegisterNode(request, context))


def _deployment(name: str, memory: int = 0) -> Deployment:
    container = Container(name="web", image="nginx:latest", requests=Resources(0, memory))
    return Deployment(
        meta=ObjectMeta(name=name),
        replicas=1,
        selector={"app": name},
        template=PodTemplate(labels={"app": name}, spec=PodSpec(containers=(container,))),
    )


def _writer_of(state: ClusterState, reason: str) -> set[str]:
    return {
        e.meta.managed_fields[0].manager
        for e in state.objects("Event")
        if isinstance(e, Event) and e.reason == reason
    }


def test_controllers_agents_scheduler_and_events_are_recorded_as_their_kubernetes_writers() -> None:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    state.writer_fields = writer_fields
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    servicer = NodeServicer(state, leases, manager, clock, 1.0, 3.0)

    _register(servicer)
    node_owners = _owners(state.get("Node", "n1"))
    assert ".metadata.labels.disk" in node_owners["kubelet/Update/v1/"]
    assert not any(p.startswith(".status") for p in node_owners["kubelet/Update/v1/"])
    assert ".status.capacity.memory" in node_owners["kubelet/Update/v1/status"]

    state.put(_deployment("web"))
    manager.run_pass()
    (pod,) = state.pods()
    created = _owners(pod)
    assert set(created) == {"kube-controller-manager/Update/v1/"}
    made = created["kube-controller-manager/Update/v1/"]
    assert {".metadata.labels.app", ".spec.containers", ".spec.restartPolicy"} <= made
    assert not any(p.startswith(".status") for p in made)

    clock.advance(5)
    report = node_pb2.PodStatusReport(
        pod_name=pod.meta.name,
        epoch=pod.epoch,
        phase="Running",
        ready=True,
        containers=[node_pb2.ContainerStatusReport(name="web", state="running", ready=True)],
    )
    _register(servicer, report)
    reported = _owners(state.pod(pod.meta.name))
    assert reported["kube-controller-manager/Update/v1/"] == made
    assert {".status.phase", ".status.containerStatuses"} <= reported["kubelet/Update/v1/status"]
    assert not any(p.startswith(".spec") for p in reported["kubelet/Update/v1/status"])

    state.put(_deployment("huge", memory=2**40))
    manager.run_pass()
    (stuck,) = state.pods_of_owner("huge")
    assert set(_owners(stuck)) == {
        "kube-controller-manager/Update/v1/", "kube-scheduler/Update/v1/status"
    }  # fmt: skip

    assert _writer_of(state, "Scheduled") == _writer_of(state, "FailedScheduling") == {
        "kube-scheduler"
    }  # fmt: skip
    assert _writer_of(state, "Started") == {"kubelet"}
    (scaled,) = {e.reason for e in state.objects("Event") if isinstance(e, Event)
                 and e.involved_kind == "Deployment" and e.involved_name == "web"}  # fmt: skip
    assert _writer_of(state, scaled) == {"kube-controller-manager"}
    event = next(e for e in state.objects("Event") if isinstance(e, Event))
    (entry,) = event.meta.managed_fields
    assert (entry.operation, entry.api_version, entry.subresource) == ("Update", "v1", "")
    assert {".reason", ".message", ".involvedObject.name"} <= {
        path_string(p) for p in entry_fields(entry)
    }


def test_times_print_as_their_second_even_when_remembered() -> None:
    from datetime import UTC, datetime

    from master.api.render import rfc3339

    for t in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_000.9999997, 1_700_000_001.0, 0.5):
        expected = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert rfc3339(t) == expected
        assert rfc3339(t) == expected  # the second time from the memo
    assert rfc3339(0) is None


def test_a_pod_status_write_records_what_the_whole_rendered_pod_would() -> None:
    # writer_fields renders only the status of a pod's status write; the ledger must be the
    # one record() makes from the two whole renderings, for every step of a pod's life.
    from dataclasses import replace

    from master.api.fieldowners import _unledgered
    from master.api.managedfields import Manager, record, with_entries
    from master.api.render import render_object
    from master.model import ContainerStatus, Pod, PodPhase, PodStatus

    spec = PodSpec(containers=(Container(name="web", image="nginx"),))
    created = Pod(ObjectMeta(name="web-1", labels={"app": "web"}, created_at=NOW - 5), spec)
    created = with_entries(
        created, writer_fields(None, created, "kube-controller-manager", "", NOW)
    )
    bound = replace(created, node_name="n1", status=PodStatus(reason="ContainerCreating"))
    running = replace(
        bound,
        status=PodStatus(
            phase=PodPhase.RUNNING,
            host_ip="10.0.0.7",
            ready=True,
            started_at=NOW,
            port_map={"80/TCP": 30001},
            container_statuses=(ContainerStatus(name="web", state="running", ready=True),),
        ),
    )
    unready = replace(running, status=replace(running.status, ready=False, message="probe"))
    gone = replace(unready, status=PodStatus(phase=PodPhase.FAILED, reason="Evicted"))
    kubelet = Manager("kubelet", "Update", "v1", "status")
    before: Pod = bound
    for after in (running, unready, gone):
        planned = replace(after, meta=before.meta)  # the ledger so far rides along
        ours = with_entries(planned, writer_fields(before, planned, "kubelet", "status", NOW + 1))
        whole = record(
            planned.meta.managed_fields,
            render_object(_unledgered(before), NOW + 1),
            render_object(_unledgered(planned), NOW + 1),
            "Pod",
            kubelet,
            NOW + 1,
        )
        assert ours.meta.managed_fields == whole
        assert any(e.manager == "kubelet" for e in whole)
        before = ours
