"""sync(): desired pods vs observed containers -> actions, with backoff as plain data."""

from __future__ import annotations

from dataclasses import replace

from agent.model import (
    ContainerPort,
    ContainerSeen,
    ContainerSpec,
    PodAssignment,
    PodSpec,
    spec_hash,
)
from agent.runtime.port import ContainerInfo
from agent.sync import (
    BACKOFF_CAP,
    ContainerBackoff,
    PullImage,
    RemoveContainer,
    RestartContainer,
    StartContainer,
    StopContainer,
    record_pull_failure,
    record_start_failure,
    sync,
)

NOW = 1_700_000_000.0
WEB = ContainerSpec("web", "pinnace/httpd:latest", ports=(ContainerPort(80),))


def pod(
    name: str = "web-1", *, stop: bool = False, policy: str = "Always", **kw: object
) -> PodAssignment:
    spec = PodSpec((WEB,), restart_policy=policy, termination_grace_period_seconds=7)
    return PodAssignment(name=name, epoch=3, spec=spec, stop=stop, **kw)  # type: ignore[arg-type]


def container(
    pod_name: str = "web-1",
    name: str = "web",
    *,
    cid: str = "c1",
    state: str = "running",
    spec: ContainerSpec = WEB,
    exit_code: int = 0,
    oom: bool = False,
    started: float = NOW - 100,
    finished: float = 0.0,
    restarts: int = 0,
) -> ContainerInfo:
    return ContainerInfo(
        id=cid,
        name=f"pinnace-n1-{pod_name}-{name}",
        image=spec.image,
        state=state,
        labels={
            "pinnace.node": "n1",
            "pinnace.pod": pod_name,
            "pinnace.container": name,
            "pinnace.epoch": "3",
            "pinnace.spec-hash": spec_hash(spec),
            "pinnace.restart-count": str(restarts),
            "pinnace.grace-seconds": "5",
        },
        exit_code=exit_code,
        oom_killed=oom,
        started_at=started,
        finished_at=finished,
    )


def test_assigned_pod_without_container_pulls_then_starts() -> None:
    result = sync({"web-1": pod()}, [], NOW, {})

    assert [type(a) for a in result.actions] == [PullImage, StartContainer]
    start = result.actions[1]
    assert isinstance(start, StartContainer)
    assert (start.pod, start.container, start.restart_count) == ("web-1", "web", 0)
    assert all(a.reason for a in result.actions)


def test_running_container_with_matching_spec_needs_nothing() -> None:
    result = sync({"web-1": pod()}, [container()], NOW, {})

    assert result.actions == ()


def test_nothing_assigned_yet_and_no_containers_means_no_actions() -> None:
    assert sync({}, [], NOW, {}).actions == ()


def test_changed_spec_replaces_the_container() -> None:
    old = container(spec=replace(WEB, image="pinnace/httpd:old"))

    result = sync({"web-1": pod()}, [old], NOW, {})

    assert [type(a) for a in result.actions] == [
        StopContainer,
        RemoveContainer,
        PullImage,
        StartContainer,
    ]
    stop = result.actions[0]
    assert isinstance(stop, StopContainer)
    assert (stop.container_id, stop.grace_seconds, stop.reason) == ("c1", 7, "spec changed")


def test_stop_order_stops_then_removes_every_container_with_the_pod_grace() -> None:
    result = sync({"web-1": pod(stop=True)}, [container()], NOW, {})

    assert result.actions == (
        StopContainer("web-1", "web", "c1", 7, "the master ordered the pod stopped"),
        RemoveContainer("web-1", "web", "c1", "the master ordered the pod stopped"),
    )


def test_unassigned_pod_is_stopped_with_its_label_grace_and_removed() -> None:
    result = sync(
        {},
        [container(pod_name="gone"), container(pod_name="gone2", cid="c2", state="exited")],
        NOW,
        {},
    )

    assert result.actions == (
        StopContainer("gone", "web", "c1", 5, "pod is no longer assigned to this node"),
        RemoveContainer("gone", "web", "c1", "pod is no longer assigned to this node"),
        RemoveContainer("gone2", "web", "c2", "pod is no longer assigned to this node"),
    )


def test_first_crash_restarts_at_once_and_counts() -> None:
    dead = container(state="exited", exit_code=137, finished=NOW - 1)

    result = sync({"web-1": pod()}, [dead], NOW, {})

    assert len(result.actions) == 1
    restart = result.actions[0]
    assert isinstance(restart, RestartContainer)
    assert (restart.container_id, restart.restart_count) == ("c1", 1)
    assert "137" in restart.reason
    assert result.backoff[("web-1", "web")].restart_count == 1
    assert result.backoff[("web-1", "web")].next_delay == 1.0


def test_repeated_crashes_back_off_doubling_to_the_cap() -> None:
    backoff: dict[tuple[str, str], ContainerBackoff] = {}
    now = NOW
    delays = []
    for i in range(10):
        dead = container(cid=f"dead{i}", state="exited", exit_code=1, started=now - 1, finished=now)
        result = sync({"web-1": pod()}, [dead], now, backoff)
        b = result.backoff[("web-1", "web")]
        delays.append(b.retry_at - now)
        if b.retry_at > now:
            # Waiting: nothing happens until the delay passed.
            assert result.actions == ()
            assert (
                sync({"web-1": pod()}, [dead], now + delays[-1] - 0.01, result.backoff).actions
                == ()
            )
            now = b.retry_at
            result = sync({"web-1": pod()}, [dead], now, result.backoff)
        assert [type(a) for a in result.actions] == [RestartContainer]
        backoff = result.backoff

    assert delays == [0, 1, 2, 4, 8, 16, 32, BACKOFF_CAP, BACKOFF_CAP, BACKOFF_CAP]
    assert backoff[("web-1", "web")].restart_count == 10


def test_ten_minutes_of_running_resets_the_backoff() -> None:
    backoff = {
        ("web-1", "web"): ContainerBackoff(restart_count=5, next_delay=32.0, handled_exit="old")
    }
    dead = container(cid="long", state="exited", started=NOW - 700, finished=NOW - 1)

    result = sync({"web-1": pod()}, [dead], NOW, backoff)

    assert [type(a) for a in result.actions] == [RestartContainer]
    assert result.backoff[("web-1", "web")].restart_count == 6


def test_crash_loop_message_names_exit_code_and_oom() -> None:
    backoff = {
        ("web-1", "web"): ContainerBackoff(restart_count=1, next_delay=1.0, handled_exit="old")
    }
    dead = container(cid="oom", state="exited", exit_code=137, oom=True, finished=NOW)

    result = sync({"web-1": pod()}, [dead], NOW, backoff)

    b = result.backoff[("web-1", "web")]
    assert result.actions == ()
    assert b.waiting_reason == "CrashLoopBackOff"
    assert "137" in b.waiting_message and "OOMKilled" in b.waiting_message


def test_restart_policy_never_and_on_failure() -> None:
    ok = container(state="exited", exit_code=0, finished=NOW)
    failed = container(state="exited", exit_code=2, finished=NOW)

    assert sync({"web-1": pod(policy="Never")}, [failed], NOW, {}).actions == ()
    assert sync({"web-1": pod(policy="OnFailure")}, [ok], NOW, {}).actions == ()
    on_failure = sync({"web-1": pod(policy="OnFailure")}, [failed], NOW, {}).actions
    assert [type(a) for a in on_failure] == [RestartContainer]


def test_adopted_container_keeps_its_labelled_restart_count() -> None:
    dead = container(state="exited", exit_code=1, restarts=4, finished=NOW)

    result = sync({"web-1": pod()}, [dead], NOW, {})

    restart = result.actions[0]
    assert isinstance(restart, RestartContainer)
    assert restart.restart_count == 5


def test_a_container_gone_from_the_engine_comes_back_as_one_more_restart() -> None:
    # As when a pod sandbox's holder dies and takes the pod's containers with it: the
    # kubelet creates them again in a new sandbox and counts each as a restart.
    seen = sync({"web-1": pod()}, [container(restarts=2)], NOW, {})
    gone = sync({"web-1": pod()}, [], NOW + 1, seen.backoff)
    started = sync({"web-1": pod()}, [container(cid="c2", restarts=3)], NOW + 2, gone.backoff)
    failed = record_start_failure(gone.backoff, ("web-1", "web"), NOW + 1, "no sandbox")
    retried = sync({"web-1": pod()}, [], NOW + 3, failed)

    start = gone.actions[-1]
    assert isinstance(start, StartContainer)
    assert start.restart_count == 3
    assert "gone" in start.reason
    assert started.backoff[("web-1", "web")].restart_count == 3
    # A start that failed is retried with the same count: one vanished container, one restart.
    (retry,) = [a for a in retried.actions if isinstance(a, StartContainer)]
    assert retry.restart_count == 3
    # A first start counts nothing; nor does the absence of a container whose restart was
    # already counted (a replacement that failed after removing it).
    fresh = sync({"web-1": pod()}, [], NOW, {})
    dead = container(state="exited", exit_code=1, finished=NOW)
    restarted = sync({"web-1": pod()}, [dead], NOW, {})
    after = sync({"web-1": pod()}, [], NOW + 1, restarted.backoff)
    assert [a.restart_count for a in fresh.actions if isinstance(a, StartContainer)] == [0]
    assert [a.restart_count for a in after.actions if isinstance(a, StartContainer)] == [1]


def test_a_container_a_restarted_agent_never_saw_counts_on_from_the_pods_status() -> None:
    # The agent restarted and its pod's sandbox died before its first listing (the sweep
    # took the containers): the pod's status at the master had container c1 at 2 restarts;
    # c1 is gone, so the one made now is restart #3, as the kubelet's would be.
    seen = {"web": ContainerSeen(restart_count=2, container_id="c1")}
    gone = sync({"web-1": pod(seen=seen)}, [], NOW, {})
    (start,) = [a for a in gone.actions if isinstance(a, StartContainer)]
    assert start.restart_count == 3
    assert "gone" in start.reason
    # Found as the status had it: adopted, nothing counted.
    found = sync({"web-1": pod(seen=seen)}, [container(restarts=2)], NOW, {})
    assert found.actions == ()
    assert found.backoff[("web-1", "web")].restart_count == 2
    # The agent's own memory wins over an assignment's older status (a later re-send).
    mine = sync({"web-1": pod()}, [container(cid="c7", restarts=5)], NOW, {})
    later = sync({"web-1": pod(seen=seen)}, [], NOW + 1, mine.backoff)
    assert [a.restart_count for a in later.actions if isinstance(a, StartContainer)] == [6]


def test_pull_failure_backs_off_and_only_that_pod_waits() -> None:
    key = ("bad", "web")
    backoff = record_pull_failure({}, key, NOW, "cannot pull image nope:1")
    assert backoff[key].waiting_reason == "ErrImagePull"
    desired = {"bad": pod("bad"), "good": pod("good")}

    waiting = sync(desired, [], NOW + 0.5, backoff)
    retried = sync(desired, [], NOW + 1.0, backoff)
    backoff2 = record_pull_failure(retried.backoff, key, NOW + 1.0, "cannot pull image nope:1")

    assert {a.pod for a in waiting.actions} == {"good"}
    assert {a.pod for a in retried.actions} == {"bad", "good"}
    assert backoff2[key].waiting_reason == "ImagePullBackOff"
    assert backoff2[key].retry_at == NOW + 3.0


def test_start_failure_waits_then_retries() -> None:
    key = ("web-1", "web")
    backoff = record_start_failure({}, key, NOW, "port is already allocated")

    assert sync({"web-1": pod()}, [], NOW, backoff).actions == ()
    assert backoff[key].waiting_reason == "CreateContainerError"
    assert [type(a) for a in sync({"web-1": pod()}, [], NOW + 1, backoff).actions] == [
        PullImage,
        StartContainer,
    ]


def test_running_container_clears_a_previous_pull_error() -> None:
    backoff = record_pull_failure({}, ("web-1", "web"), NOW, "boom")

    result = sync({"web-1": pod()}, [container()], NOW + 5, backoff)

    assert result.backoff[("web-1", "web")].waiting_reason == ""


def test_duplicates_are_removed_keeping_the_running_one() -> None:
    live = container(cid="live")
    stale = container(cid="stale", state="exited", started=NOW - 500)

    result = sync({"web-1": pod()}, [stale, live], NOW, {})

    assert result.actions == (RemoveContainer("web-1", "web", "stale", "duplicate container"),)


def test_container_dropped_from_the_spec_is_removed() -> None:
    extra = container(name="sidecar", cid="side")

    result = sync({"web-1": pod()}, [container(), extra], NOW, {})

    assert [(type(a), a.container) for a in result.actions] == [
        (StopContainer, "sidecar"),
        (RemoveContainer, "sidecar"),
    ]


def test_fencing_tears_everything_down_with_the_reason() -> None:
    result = sync({"web-1": pod()}, [container()], NOW, {}, fence_reason="Fenced: lost master")

    assert {a.reason for a in result.actions} == {"Fenced: lost master"}
    assert [type(a) for a in result.actions] == [StopContainer, RemoveContainer]


def test_backoff_of_pods_no_longer_desired_is_dropped() -> None:
    backoff = {("old", "web"): ContainerBackoff(restart_count=3)}

    assert sync({}, [], NOW, backoff).backoff == {}
