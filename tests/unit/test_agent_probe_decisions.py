"""What probe verdicts change: sync restarts an unhealthy container, status computes ready."""

from __future__ import annotations

from dataclasses import replace

from agent.model import ContainerPort, ContainerSpec, PodAssignment, PodSpec, Probe, spec_hash
from agent.probes import ProbeKey, ProbeState, Unhealthy
from agent.runtime.port import ContainerInfo
from agent.status import pod_status
from agent.sync import CRASH_LOOP_BACKOFF, RestartContainer, StopContainer, sync

NOW = 1_700_000_000.0
READINESS = Probe(kind="httpGet", port="80", path="/healthz")
LIVENESS = Probe(kind="exec", command=("false",))
WEB = ContainerSpec(
    "web",
    "pinnace/httpd:latest",
    ports=(ContainerPort(80),),
    readiness_probe=READINESS,
    liveness_probe=LIVENESS,
)
FAILURE = "command false exited with 1"
KEY = ("p", "web")


def pod(spec: ContainerSpec = WEB, policy: str = "Always") -> PodAssignment:
    return PodAssignment(
        "p", 2, PodSpec((spec,), restart_policy=policy, termination_grace_period_seconds=7)
    )


def container(
    cid: str = "c1", *, state: str = "running", exit_code: int = 0, spec: ContainerSpec = WEB
) -> ContainerInfo:
    return ContainerInfo(
        id=cid,
        name="pinnace-n1-p-web",
        image=spec.image,
        state=state,
        labels={
            "pinnace.node": "n1",
            "pinnace.pod": "p",
            "pinnace.container": "web",
            "pinnace.spec-hash": spec_hash(spec),
        },
        exit_code=exit_code,
        started_at=NOW - 30,
        finished_at=NOW - 1 if state == "exited" else 0.0,
        ports={"80/TCP": 32800} if state == "running" else {},
    )


# -- sync: a failed liveness probe restarts the container -----------------------------


def test_an_unhealthy_container_is_stopped_with_the_pod_grace_period() -> None:
    result = sync({"p": pod()}, [container()], NOW, {}, unhealthy={KEY: Unhealthy("c1", FAILURE)})

    (stop,) = result.actions
    assert isinstance(stop, StopContainer)
    assert (stop.container_id, stop.grace_seconds) == ("c1", 7)
    assert stop.reason == f"Liveness probe failed: {FAILURE}; the container will be restarted"
    assert result.backoff[KEY].unhealthy_id == container().run_key


def test_a_verdict_about_another_container_changes_nothing() -> None:
    result = sync({"p": pod()}, [container()], NOW, {}, unhealthy={KEY: Unhealthy("old", FAILURE)})

    assert result.actions == ()


def test_the_stopped_container_is_restarted_at_once_and_counted_saying_why() -> None:
    stopped = sync({"p": pod()}, [container()], NOW, {}, unhealthy={KEY: Unhealthy("c1", FAILURE)})
    dead = container(state="exited", exit_code=143)

    result = sync({"p": pod()}, [dead], NOW + 1, stopped.backoff)

    (restart,) = result.actions
    assert isinstance(restart, RestartContainer)
    assert restart.restart_count == 1
    assert restart.reason == (
        f"container failed its liveness probe (Liveness probe failed: {FAILURE}); restart #1"
    )


def test_repeated_liveness_failures_back_off_like_crashes() -> None:
    backoff = sync(
        {"p": pod()}, [container()], NOW, {}, unhealthy={KEY: Unhealthy("c1", FAILURE)}
    ).backoff
    backoff = sync({"p": pod()}, [container(state="exited", exit_code=143)], NOW, backoff).backoff
    backoff = sync(
        {"p": pod()}, [container("c2")], NOW + 5, backoff, unhealthy={KEY: Unhealthy("c2", FAILURE)}
    ).backoff
    second_death = container("c2", state="exited", exit_code=143)

    result = sync({"p": pod()}, [second_death], NOW + 6, backoff)

    assert result.actions == ()  # backing off 1 s first
    b = result.backoff[KEY]
    assert b.waiting_reason == CRASH_LOOP_BACKOFF
    assert b.waiting_message.endswith(f"in pod p: Liveness probe failed: {FAILURE}")
    (restart,) = sync({"p": pod()}, [second_death], NOW + 7, result.backoff).actions
    assert isinstance(restart, RestartContainer) and restart.restart_count == 2


def test_on_failure_restarts_a_container_killed_as_unhealthy_even_if_it_exited_zero() -> None:
    stopped = sync(
        {"p": pod(policy="OnFailure")},
        [container()],
        NOW,
        {},
        unhealthy={KEY: Unhealthy("c1", FAILURE)},
    )
    clean_exit = container(state="exited", exit_code=0)

    restarted = sync({"p": pod(policy="OnFailure")}, [clean_exit], NOW, stopped.backoff)
    completed = sync({"p": pod(policy="OnFailure")}, [clean_exit], NOW, {})

    assert [type(a) for a in restarted.actions] == [RestartContainer]
    assert completed.actions == ()


def test_never_leaves_an_unhealthy_container_terminated_and_says_why() -> None:
    stopped = sync(
        {"p": pod(policy="Never")},
        [container()],
        NOW,
        {},
        unhealthy={KEY: Unhealthy("c1", FAILURE)},
    )
    dead = container(state="exited", exit_code=143)

    result = sync({"p": pod(policy="Never")}, [dead], NOW, stopped.backoff)
    report = pod_status(pod(policy="Never"), [dead], result.backoff, NOW, "127.0.0.1")

    assert result.actions == ()
    (status,) = report.containers
    assert (status.state, status.message) == ("terminated", f"Liveness probe failed: {FAILURE}")


# -- status: ready means running and passing the readiness probe -------------------------


def states(**by_kind: ProbeState) -> dict[ProbeKey, ProbeState]:
    out: dict[ProbeKey, ProbeState] = {}
    for kind, state in by_kind.items():
        assert kind in ("readiness", "liveness")
        out[("p", "web", kind)] = state  # type: ignore[index]
    return out


def test_a_running_container_without_a_readiness_probe_is_ready() -> None:
    spec = replace(WEB, readiness_probe=None, liveness_probe=None)

    report = pod_status(pod(spec), [container(spec=spec)], {}, NOW, "127.0.0.1")

    assert report.ready and report.containers[0].ready


def test_a_running_container_is_not_ready_until_its_readiness_probe_passes() -> None:
    not_yet = pod_status(pod(), [container()], {}, NOW, "127.0.0.1", {})
    passing = pod_status(
        pod(), [container()], {}, NOW, "127.0.0.1", states(readiness=ProbeState("c1", True))
    )

    assert (not_yet.phase, not_yet.ready, not_yet.containers[0].ready) == ("Running", False, False)
    assert (not_yet.reason, not_yet.containers[0].reason) == ("", "")
    assert (passing.phase, passing.ready, passing.containers[0].ready) == ("Running", True, True)


def test_a_failing_readiness_probe_is_reported_on_the_container_and_the_pod() -> None:
    failing = ProbeState("c1", False, failures=3, message="HTTP probe failed with statuscode: 404")

    report = pod_status(pod(), [container()], {}, NOW, "127.0.0.1", states(readiness=failing))

    (status,) = report.containers
    assert (status.state, status.ready, status.reason) == ("running", False, "Unhealthy")
    assert status.message == "Readiness probe failed: HTTP probe failed with statuscode: 404"
    assert (report.phase, report.ready, report.reason) == ("Running", False, "Unhealthy")
    assert report.message == f"container web: {status.message}"


def test_a_failed_liveness_probe_makes_the_container_unready_while_it_is_stopped() -> None:
    probes = states(
        readiness=ProbeState("c1", True), liveness=ProbeState("c1", False, message=FAILURE)
    )

    report = pod_status(pod(), [container()], {}, NOW, "127.0.0.1", probes)

    (status,) = report.containers
    assert (status.ready, status.reason) == (False, "Unhealthy")
    assert status.message == f"Liveness probe failed: {FAILURE}"
    assert not report.ready


def test_a_verdict_about_a_previous_container_does_not_make_the_new_one_ready() -> None:
    report = pod_status(
        pod(), [container("c2")], {}, NOW, "127.0.0.1", states(readiness=ProbeState("c1", True))
    )

    assert not report.ready
