"""decide_report keeps a running pod's bridge address through a report that leaves it out.

Agents before 3863697 registered after a restart with reports without `pod_ip`; the master's
HAProxy reaches pods at that address (master/lb/endpoints.py `lb_address`), so the flip took
every slot of the node's pods out of service until a health check passed (503s in
tests/integration/test_lb_outlives_master.py's upgrade)."""

from __future__ import annotations

from dataclasses import replace

from master.app.reports import PodReport, PutPod, decide_report, kept_pod_ip
from master.model import ContainerStatus, ObjectMeta, Pod, PodPhase, PodSpec, PodStatus

RUNNING = PodStatus(
    phase=PodPhase.RUNNING,
    host_ip="127.0.0.1",
    port_map={"80/TCP": 32801},
    container_statuses=(ContainerStatus("web", "running", ready=True, container_id="c1"),),
    ready=True,
    pod_ip="172.17.0.4",
)


def pod(status: PodStatus) -> Pod:
    return Pod(ObjectMeta("p"), PodSpec(()), node_name="n1", epoch=3, status=status)


def test_an_adopted_report_without_the_address_keeps_the_pods_address() -> None:
    report = PodReport("p", 3, replace(RUNNING, pod_ip=""))

    actions = decide_report("n1", report, pod(RUNNING), adopted=True)

    assert not [a for a in actions if isinstance(a, PutPod)]  # nothing changed: no write


def test_the_same_running_containers_keep_their_address() -> None:
    assert kept_pod_ip(RUNNING, replace(RUNNING, pod_ip="")).pod_ip == "172.17.0.4"


def test_another_container_port_phase_or_address_takes_the_report_as_it_is() -> None:
    restarted = replace(
        RUNNING,
        pod_ip="",
        container_statuses=(ContainerStatus("web", "running", ready=True, container_id="c2"),),
    )
    moved = replace(RUNNING, pod_ip="", port_map={"80/TCP": 32802})
    stopped = replace(RUNNING, pod_ip="", phase=PodPhase.PENDING)
    other = replace(RUNNING, pod_ip="172.17.0.9")

    for new in (restarted, moved, stopped, other):
        assert kept_pod_ip(RUNNING, new) == new
