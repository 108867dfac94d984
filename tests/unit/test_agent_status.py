"""pod_status(): observed containers + backoff -> the PodStatusReport fields."""

from __future__ import annotations

from dataclasses import replace

from agent.convert import status_to_proto
from agent.model import ContainerPort, ContainerSpec, PodAssignment, PodSpec, spec_hash
from agent.runtime.port import ContainerInfo
from agent.status import adopted_status, pod_status
from agent.sync import ContainerBackoff, record_pull_failure
from master.api.convert import pod_status_from_proto

NOW = 1_700_000_000.0
WEB = ContainerSpec("web", "pinnace/httpd:latest", ports=(ContainerPort(80),))
SIDE = ContainerSpec("side", "pinnace/httpd:latest")


def assignment(*specs: ContainerSpec, stop: bool = False, policy: str = "Always") -> PodAssignment:
    return PodAssignment("p", 4, PodSpec(specs or (WEB,), restart_policy=policy), stop=stop)


def running(spec: ContainerSpec = WEB, cid: str = "c1", **kw: object) -> ContainerInfo:
    info = ContainerInfo(
        id=cid,
        name=f"pinnace-n1-p-{spec.name}",
        image=spec.image,
        state="running",
        labels={
            "pinnace.pod": "p",
            "pinnace.container": spec.name,
            "pinnace.epoch": "4",
            "pinnace.spec-hash": spec_hash(spec),
        },
        started_at=NOW - 10,
        ports={"80/TCP": 32801} if spec.ports else {},
    )
    return replace(info, **kw)  # type: ignore[arg-type]


def test_all_running_is_running_ready_with_port_map_and_host_ip() -> None:
    report = pod_status(assignment(), [running()], {}, NOW, "127.0.0.1")

    assert (report.phase, report.ready, report.host_ip) == ("Running", True, "127.0.0.1")
    assert report.port_map == {"80/TCP": 32801}
    assert report.epoch == 4
    assert report.started_at == NOW - 10
    (c,) = report.containers
    assert (c.state, c.ready, c.container_id, c.restart_count) == ("running", True, "c1", 0)


def test_every_container_state_carries_the_image_id_of_its_container() -> None:
    image_id = "docker://sha256:" + "ab" * 32
    up = pod_status(assignment(), [running(image_id=image_id)], {}, NOW, "127.0.0.1")
    done = pod_status(
        assignment(policy="Never"),
        [running(image_id=image_id, state="exited", exit_code=0)],
        {},
        NOW,
        "127.0.0.1",
    )
    (adopted,) = adopted_status("p", [running(image_id=image_id)], "127.0.0.1").containers
    creating = pod_status(assignment(), [], {}, NOW, "127.0.0.1")

    assert [c.image_id for c in up.containers + done.containers] == [image_id, image_id]
    assert (done.containers[0].state, adopted.image_id) == ("terminated", image_id)
    assert creating.containers[0].image_id == ""


def test_nothing_created_yet_is_pending_container_creating() -> None:
    report = pod_status(assignment(), [], {}, NOW, "127.0.0.1")

    assert (report.phase, report.ready) == ("Pending", False)
    assert (report.containers[0].state, report.containers[0].reason) == (
        "waiting",
        "ContainerCreating",
    )


def test_one_of_two_containers_missing_is_still_pending() -> None:
    report = pod_status(assignment(WEB, SIDE), [running()], {}, NOW, "127.0.0.1")

    assert report.phase == "Pending"
    assert not report.ready


def test_pull_error_is_reported_on_the_container_and_the_pod() -> None:
    backoff = record_pull_failure({}, ("p", "web"), NOW, "cannot pull image x")

    report = pod_status(assignment(), [], backoff, NOW, "127.0.0.1")

    assert report.phase == "Pending"
    assert report.reason == "ErrImagePull"
    assert report.containers[0].reason == "ErrImagePull"
    assert "cannot pull image x" in report.containers[0].message


def test_crash_loop_is_running_phase_waiting_container_with_exit_code() -> None:
    dead = running(state="exited", exit_code=3, finished_at=NOW)
    b = ContainerBackoff(
        restart_count=2,
        retry_at=NOW + 4,
        handled_exit=dead.run_key,
        waiting_reason="CrashLoopBackOff",
        waiting_message="back-off 4s ... last exit code 3",
    )

    report = pod_status(assignment(), [dead], {("p", "web"): b}, NOW, "127.0.0.1")

    c = report.containers[0]
    assert (report.phase, report.ready) == ("Running", False)
    assert (c.state, c.reason, c.exit_code, c.restart_count) == (
        "waiting",
        "CrashLoopBackOff",
        3,
        2,
    )
    assert "exit code 3" in c.message
    assert report.port_map == {}


def test_finished_pods_succeed_or_fail_without_restart() -> None:
    ok = running(state="exited", exit_code=0)
    oom = running(state="exited", exit_code=137, oom_killed=True)

    done = pod_status(assignment(policy="Never"), [ok], {}, NOW, "h")
    failed = pod_status(assignment(policy="Never"), [oom], {}, NOW, "h")

    assert (done.phase, done.containers[0].reason) == ("Succeeded", "Completed")
    assert (failed.phase, failed.containers[0].reason) == ("Failed", "OOMKilled")


def test_stopping_pod_is_not_ready_and_says_so_then_reports_removed() -> None:
    stopping = pod_status(assignment(stop=True), [running()], {}, NOW, "h")
    gone = pod_status(assignment(stop=True), [], {}, NOW, "h")

    assert (stopping.ready, stopping.reason, stopping.removed) == (False, "Stopping", False)
    assert (gone.removed, gone.epoch) == (True, 4)


def test_adopted_status_rebuilds_a_report_from_labels() -> None:
    report = adopted_status(
        "p",
        [
            running(
                labels={
                    "pinnace.pod": "p",
                    "pinnace.container": "web",
                    "pinnace.epoch": "9",
                    "pinnace.restart-count": "2",
                },
            )
        ],
        "127.0.0.1",
    )

    assert (report.pod_name, report.epoch, report.phase, report.ready) == ("p", 9, "Running", True)
    assert report.port_map == {"80/TCP": 32801}
    assert report.containers[0].restart_count == 2


def test_on_a_pod_network_the_pod_is_reached_at_its_container_ip() -> None:
    on_network = running(address="172.30.0.7", ports={"80/TCP": 80})

    report = pod_status(assignment(), [on_network], {}, NOW, "127.0.0.1")
    adopted = adopted_status("p", [on_network], "127.0.0.1")

    assert (report.host_ip, report.port_map) == ("172.30.0.7", {"80/TCP": 80})
    assert (adopted.host_ip, adopted.port_map) == ("172.30.0.7", {"80/TCP": 80})


def test_an_adopted_pod_reports_the_bridge_address_a_pod_status_does() -> None:
    # What a restarted agent registers with must not lose what its next report says: the
    # master's HAProxy reaches the pod at this address, and a flip there and back took the
    # slots out of service (tests/integration/test_lb_outlives_master.py's upgrade).
    on_bridge = running(probe_address="172.17.0.4")

    report = pod_status(assignment(), [on_bridge], {}, NOW, "127.0.0.1")
    adopted = adopted_status("p", [on_bridge], "127.0.0.1")
    dead = adopted_status("p", [replace(on_bridge, state="exited", ports={})], "127.0.0.1")

    assert report.pod_ip == adopted.pod_ip == "172.17.0.4"
    assert (adopted.host_ip, adopted.port_map) == (report.host_ip, report.port_map)
    assert dead.pod_ip == ""


def test_a_stopped_container_on_a_pod_network_falls_back_to_the_node_address() -> None:
    dead = running(state="exited", address="", ports={}, finished_at=NOW)

    report = pod_status(assignment(policy="Never"), [dead], {}, NOW, "10.0.0.5")

    assert report.host_ip == "10.0.0.5"
    assert report.port_map == {}


def test_the_image_id_reaches_the_master_over_the_wire() -> None:
    image_id = "docker-pullable://nginx@sha256:" + "cd" * 32
    report = pod_status(assignment(), [running(image_id=image_id)], {}, NOW, "127.0.0.1")

    kept = pod_status_from_proto(status_to_proto(report))

    assert [c.image_id for c in kept.container_statuses] == [image_id]
