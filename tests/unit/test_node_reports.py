"""The master's side of pod reports: epochs, Adopted and Fenced events (fake clock, no sockets).

The NodeServicer is driven through RegisterNode (which carries the pods an agent
found), the way a restarted or reconnecting agent speaks, over a real
ClusterState on a MemoryStore. A report counts only for the pod's current
assignment (same node, same epoch); a Fenced report explains a stop even for a
pod that was replaced meanwhile, once. A stop order held back by the drain gate
goes out when the gate opens, even with no state change to trigger it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from kernel.clock import FakeClock
from master.api.node_servicer import NodeServicer
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import (
    Container,
    Event,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
)
from master.state import ClusterState
from master.store import MemoryStore
from protos import node_pb2


def _setup() -> tuple[ClusterState, NodeServicer]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    servicer = NodeServicer(state, leases, manager, clock, 1.0, 3.0)
    return state, servicer


def _bound_pod(state: ClusterState, name: str = "web-1", node: str = "n1", epoch: int = 7) -> Pod:
    spec = PodSpec(containers=(Container(name="web", image="pinnace/httpd:latest"),))
    return state.put(
        Pod(
            meta=ObjectMeta(name=name),
            spec=spec,
            node_name=node,
            epoch=epoch,
            status=PodStatus(reason="ContainerCreating"),
        )
    )


def _register(servicer: NodeServicer, node: str, *reports: node_pb2.PodStatusReport) -> None:
    info = node_pb2.NodeInfo(
        name=node,
        address="127.0.0.1",
        capacity=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
        allocatable=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
    )
    request = node_pb2.RegisterNodeRequest(node=info, pods=list(reports))
    context: Any = None  # valid input never touches the context
    asyncio.run(servicer.RegisterNode(request, context))


def _running(pod: str, epoch: int) -> node_pb2.PodStatusReport:
    return node_pb2.PodStatusReport(
        pod_name=pod,
        epoch=epoch,
        phase="Running",
        ready=True,
        containers=[node_pb2.ContainerStatusReport(name="web", state="running", ready=True)],
    )


def _events(state: ClusterState, reason: str) -> list[Event]:
    return [e for e in state.objects("Event") if isinstance(e, Event) and e.reason == reason]


def test_a_report_for_an_older_epoch_is_ignored() -> None:
    state, servicer = _setup()
    _bound_pod(state, epoch=7)

    _register(servicer, "n1", _running("web-1", epoch=6))

    pod = state.pod("web-1")
    assert pod is not None and pod.status.phase == PodPhase.PENDING
    assert not pod.status.ready


def test_a_report_for_the_current_epoch_is_applied() -> None:
    state, servicer = _setup()
    _bound_pod(state, epoch=7)

    _register(servicer, "n1", _running("web-1", epoch=7))

    pod = state.pod("web-1")
    assert pod is not None and pod.status.phase == PodPhase.RUNNING and pod.status.ready
    assert _events(state, "Started")


def test_a_report_from_a_node_the_pod_is_not_bound_to_is_ignored() -> None:
    state, servicer = _setup()
    _bound_pod(state, node="n2", epoch=7)

    _register(servicer, "n1", _running("web-1", epoch=7))

    pod = state.pod("web-1")
    assert pod is not None and pod.status.phase == PodPhase.PENDING


def test_a_restarted_agent_reporting_running_pods_records_adopted() -> None:
    state, servicer = _setup()
    pod = _bound_pod(state, epoch=7)
    state.put(replace(pod, status=PodStatus(phase=PodPhase.RUNNING, ready=True)))

    _register(servicer, "n1", _running("web-1", epoch=7))

    (adopted,) = _events(state, "Adopted")
    assert adopted.involved_name == "web-1" and "n1" in adopted.message


def test_a_fenced_report_for_a_replaced_pod_is_one_event_however_often_it_comes() -> None:
    state, servicer = _setup()
    # n1 held web-gone at epoch 5; the master took it away (evicted) meanwhile.
    _bound_pod(state, name="web-gone", node="n1", epoch=5)
    state.remove("Pod", "web-gone")
    fenced = node_pb2.PodStatusReport(
        pod_name="web-gone",
        epoch=5,
        phase="Pending",
        reason="Fenced",
        message="the agent was frozen for 4.0s, longer than its 3s lease",
    )

    _register(servicer, "n1", fenced)
    _register(servicer, "n1", replace_removed(fenced))

    (event,) = _events(state, "Fenced")
    assert event.involved_name == "web-gone" and event.type == "Warning"
    assert event.count == 1
    assert "node n1 stopped its copy of web-gone: the agent was frozen" in event.message
    assert state.pod("web-gone") is None


def test_a_fenced_report_for_a_pod_still_held_marks_it_not_ready() -> None:
    state, servicer = _setup()
    pod = _bound_pod(state, epoch=7)
    state.put(replace(pod, status=PodStatus(phase=PodPhase.RUNNING, ready=True)))
    fenced = node_pb2.PodStatusReport(
        pod_name="web-1", epoch=7, reason="Fenced", message="no ack", removed=True
    )

    _register(servicer, "n1", fenced)

    held = state.pod("web-1")
    assert held is not None and not held.status.ready and held.status.reason == "Fenced"
    assert len(_events(state, "Fenced")) == 1


def replace_removed(report: node_pb2.PodStatusReport) -> node_pb2.PodStatusReport:
    again = node_pb2.PodStatusReport()
    again.CopyFrom(report)
    again.removed = True
    return again


def test_a_stop_order_held_by_the_drain_gate_is_sent_once_the_gate_opens_by_itself(
    monkeypatch: Any,
) -> None:
    """The gate may open by timeout with no state change: the session re-checks it."""
    monkeypatch.setattr("master.api.node_servicer.STOP_GATE_RECHECK", 0.02)
    state, servicer = _setup()
    pod = _bound_pod(state, epoch=7)
    state.put(replace(pod, deletion_requested_at=1.0))
    gate_open = False
    servicer.gate_stops(lambda p: gate_open)
    _register(servicer, "n1")

    async def scenario() -> list[bool]:
        nonlocal gate_open
        session_id = servicer._sessions["n1"].session_id
        hold = asyncio.Event()

        async def agent_messages() -> Any:
            yield node_pb2.AgentMessage(
                hello=node_pb2.SessionHello(node_name="n1", session_id=session_id)
            )
            await hold.wait()

        context: Any = None
        stream: Any = servicer.StreamSession(agent_messages(), context)

        async def assignments() -> Any:
            # The session also sends the agent its peers; only assignment sets count here.
            while (msg := await anext(stream)).WhichOneof("body") != "assignments":
                pass
            return msg

        first = await asyncio.wait_for(assignments(), 5)
        gate_open = True
        second = await asyncio.wait_for(assignments(), 5)
        hold.set()
        await stream.aclose()
        return [a.stop for m in (first, second) for a in m.assignments.pods]

    assert asyncio.run(scenario()) == [False, True]


def test_fenced_reports_about_pods_a_node_never_held_are_not_events() -> None:
    state, servicer = _setup()
    _bound_pod(state, name="web-1", node="n2", epoch=7)
    forged = [
        node_pb2.PodStatusReport(
            pod_name=name, epoch=epoch, reason="Fenced", message="forged", removed=True
        )
        for name, epoch in [(f"web-{i}", 1) for i in range(500)] + [("web-1", 7), ("web-1", 6)]
    ]

    _register(servicer, "n1", *forged)

    assert _events(state, "Fenced") == []
    held = state.pod("web-1")
    assert held is not None and held.node_name == "n2" and held.status.reason != "Fenced"


def test_events_one_node_causes_are_rate_limited() -> None:
    state, servicer = _setup()
    _bound_pod(state, name="web-1", node="n1", epoch=7)
    for restarts in range(1, 201):  # a container restarting as fast as the agent reports
        report = _running("web-1", epoch=7)
        report.containers[0].restart_count = restarts
        _register(servicer, "n1", report)

    restarted = _events(state, "Restarted")
    assert 0 < len(restarted) <= 25
    pod = state.pod("web-1")
    assert pod is not None and pod.status.container_statuses[0].restart_count == 200


def test_a_started_pod_s_event_is_queued_and_read_as_written() -> None:
    """Started (one of the three events every pod causes) waits for the event writer
    instead of being written on the report (master/event_queue.py); a reader sees it."""
    state, servicer = _setup()
    _bound_pod(state, epoch=7)
    written: list[str] = []
    state.subscribe(
        lambda kind, obj, deleted, previous: written.append(getattr(obj, "reason", kind))
    )

    _register(servicer, "n1", _running("web-1", epoch=7))

    assert "Pod" in written and "Started" not in written
    (started,) = _events(state, "Started")
    assert started.involved_name == "web-1" and written[-1] == "Started"
