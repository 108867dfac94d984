"""Die events: one container's death decided from that container alone, and the fast
relisting left for a die the inspect could not answer (agent/deaths.py, the state
machine's ContainerDied)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.deaths import pending_deaths, with_death, with_run
from agent.model import PodAssignment, PodSpec, Probe, spec_hash
from agent.probes import ProbeResult
from agent.runtime.port import LABEL_SPEC_HASH, ContainerInfo
from agent.state.events import (
    ContainerDied,
    ContainerRan,
    FenceRequested,
    Instruction,
    ProbeFinished,
    Publish,
    Relist,
    RunPodActions,
    RunProbe,
)
from agent.sync import RestartContainer
from tests.unit.test_agent_state import SPEC, T0, Machine, actions, container, pod


def _c(cid: str, state: str) -> ContainerInfo:
    return ContainerInfo(id=cid, name=cid, image="nginx", state=state)


@pytest.mark.parametrize(
    ("observed", "now", "left"),
    [
        ([_c("a", "running")], 10.0, {"a"}),  # the list still lags the event: keep checking
        ([_c("a", "exited")], 10.0, set()),  # the list caught up: the restart is decided
        ([], 10.0, set()),  # gone altogether
        ([_c("a", "running")], 11.0, set()),  # a second of lag at most (then the relist)
        ([_c("a", "restarting")], 10.0, {"a"}),
    ],
)
def test_pending_deaths(observed: list[ContainerInfo], now: float, left: set[str]) -> None:
    assert set(pending_deaths({"a": 11.0}, observed, now)) == left


def test_other_containers_do_not_keep_a_death_pending() -> None:
    observed = [_c("a", "exited"), _c("b", "running")]

    assert pending_deaths({"a": 11.0}, observed, 10.0) == {}


def _died(c: ContainerInfo, exit_code: int = 137, at: float = T0 + 5) -> ContainerInfo:
    return replace(c, state="exited", exit_code=exit_code, finished_at=at, ports={})


def test_a_death_takes_the_place_of_its_container_in_the_last_list() -> None:
    a, b = container("a", "ca"), container("b", "cb")

    assert with_death([a, b], _died(a)) == (_died(a), b)
    # no news: still alive, unknown to the list, or older than the run the list shows
    assert with_death([a, b], a) is None
    assert with_death([b], _died(a)) is None
    later = replace(a, started_at=T0 + 9)
    assert with_death([later, b], _died(a)) is None


def _running(m: Machine, *pods: PodAssignment) -> list[ContainerInfo]:
    """Assigned, started, finished and listed running: the state a crash finds."""
    m.assign(*pods)
    m.listed([])
    m.done(*(p.name for p in pods))
    running = [container(p.name, f"c{p.name}") for p in pods]
    m.listed(running)
    return running


def test_a_die_decides_its_pods_restart_from_that_container_alone() -> None:
    m = Machine()
    a, b = _running(m, pod("a"), pod("b"))

    out = m.feed(ContainerDied(_died(a), T0 + 5))

    assert actions(out) == {"a": ["RestartContainer"]}
    (run,) = [i for i in out if isinstance(i, RunPodActions)]
    (restart,) = run.actions
    assert isinstance(restart, RestartContainer)
    assert (restart.container_id, restart.restart_count, restart.immediate) == ("ca", 1, True)
    assert restart.dead == _died(a)
    assert not any(isinstance(i, Relist) for i in out)  # no list of every container
    (publish,) = [i for i in out if isinstance(i, Publish)]
    (report_a,) = [r for r in publish.reports if r.pod_name == "a"]
    assert report_a.containers[0].restart_count == 1
    # The next list, taken after the restart ran, finds it running: nothing more to do.
    m.done("a")
    assert actions(m.listed([replace(a, started_at=T0 + 6), b], T0 + 6)) == {}


def test_the_second_death_backs_off_as_a_listed_one_does() -> None:
    m = Machine()
    (a,) = _running(m, pod("a"))
    m.feed(ContainerDied(_died(a), T0 + 5))
    m.done("a")
    again = replace(a, name=f"{a.name}.restarted-1", started_at=T0 + 6)
    m.listed([again], T0 + 6)

    out = m.feed(ContainerDied(_died(again, exit_code=2, at=T0 + 7), T0 + 7))

    assert actions(out) == {}
    (publish,) = [i for i in out if isinstance(i, Publish)]
    (status,) = publish.reports[0].containers
    assert (status.reason, status.restart_count) == ("CrashLoopBackOff", 1)
    assert "exit code 2" in status.message
    # the relist past the back-off restarts it, replacing it (it ran twice already)
    late = m.listed([_died(again, exit_code=2, at=T0 + 7)], T0 + 8)
    assert actions(late) == {"a": ["RestartContainer"]}


@pytest.mark.parametrize(
    ("policy", "exit_code", "restarts"),
    [("Never", 1, False), ("OnFailure", 0, False), ("OnFailure", 1, True), ("Always", 0, True)],
)
def test_a_die_follows_the_restart_policy(policy: str, exit_code: int, restarts: bool) -> None:
    m = Machine()
    (a,) = _running(m, PodAssignment("a", 1, PodSpec((SPEC,), restart_policy=policy)))

    out = m.feed(ContainerDied(_died(a, exit_code), T0 + 5))

    assert actions(out) == ({"a": ["RestartContainer"]} if restarts else {})


def test_a_die_the_last_list_cannot_be_trusted_for_asks_for_a_relist() -> None:
    m = Machine()
    a, b = _running(m, pod("a"), pod("b"))
    relist_only = [Relist()]
    # a fenced node stops everything: the relist decides
    m.feed(FenceRequested("test"))
    assert m.feed(ContainerDied(_died(a), T0 + 5)) == relist_only

    m = Machine()
    a, b = _running(m, pod("a"), pod("b"))
    m.feed(ContainerDied(_died(a), T0 + 5))  # restart dispatched: "a" is busy (in flight)
    assert m.feed(ContainerDied(_died(a), T0 + 5)) == relist_only
    m.done("a")  # finished, but no list since
    assert m.feed(ContainerDied(_died(a), T0 + 5)) == relist_only
    # the list saw the exit first and the container runs again: the inspect is old news
    m.listed([replace(a, started_at=T0 + 6), b], T0 + 6)
    assert m.feed(ContainerDied(_died(a), T0 + 7)) == relist_only
    # a container the list does not know, or of a pod not assigned here
    assert m.feed(ContainerDied(_died(container("a", "stray")), T0 + 7)) == relist_only
    assert m.feed(ContainerDied(_died(container("z", "cz")), T0 + 7)) == relist_only
    # before any list
    fresh = Machine()
    fresh.assign(pod("a"))
    assert fresh.feed(ContainerDied(_died(a), T0 + 5)) == relist_only


# -- the run that follows: reported at once ----------------------------------------------


def test_a_container_running_again_is_reported_at_once_not_after_a_list() -> None:
    m = Machine()
    a, b = _running(m, pod("a"), pod("b"))
    m.feed(ContainerDied(_died(a), T0 + 5))
    again = replace(a, name=f"{a.name}.restarted-1", started_at=T0 + 6)

    out = m.feed(ContainerRan(again, "ca", T0 + 6))

    assert actions(out) == {} and not any(isinstance(i, Relist) for i in out)
    (publish,) = [i for i in out if isinstance(i, Publish)]
    status = {r.pod_name: r.containers[0] for r in publish.reports}
    assert (status["a"].state, status["a"].restart_count) == ("running", 1)
    assert status["a"].started_at == T0 + 6
    assert status["b"].state == "running"
    # The list after the task agrees: nothing more to do.
    m.done("a")
    assert actions(m.listed([again, b], T0 + 7)) == {}


def test_a_replacement_takes_the_dead_containers_place_in_the_report() -> None:
    m = Machine()
    (a,) = _running(m, pod("a"))
    m.feed(ContainerDied(_died(a), T0 + 5))
    new = container("a", "cnew", restarts=1, started=T0 + 6)

    out = m.feed(ContainerRan(new, "ca", T0 + 6))

    (publish,) = [i for i in out if isinstance(i, Publish)]
    (report,) = publish.reports
    assert [(c.container_id, c.state) for c in report.containers] == [("cnew", "running")]
    assert [c.id for c in m.state.pods.observed] == ["cnew"]


def test_a_run_is_not_reported_for_a_fenced_node_or_a_pod_no_longer_here() -> None:
    m = Machine()
    (a,) = _running(m, pod("a"))
    m.feed(ContainerDied(_died(a), T0 + 5))
    m.feed(FenceRequested("test"))
    assert m.feed(ContainerRan(replace(a, started_at=T0 + 6), "ca", T0 + 6)) == []

    m = Machine()
    (a,) = _running(m, pod("a"))
    m.feed(ContainerDied(_died(a), T0 + 5))
    m.assign(revision=2)
    assert m.feed(ContainerRan(replace(a, started_at=T0 + 6), "ca", T0 + 6)) == []


def test_a_later_run_in_the_last_list_is_kept() -> None:
    a = container("a", "ca", started=T0 + 9)
    assert with_run([a], replace(a, started_at=T0 + 6), "ca") == (a,)


def test_a_run_started_again_in_place_is_not_ready_until_its_own_probe_passes() -> None:
    # The run keeps its container's id: the verdicts of the run before must not carry over.
    probed = replace(SPEC, readiness_probe=Probe(kind="httpGet", port="80", path="/"))
    a_pod = PodAssignment("a", 1, PodSpec((probed,)))
    m = Machine()
    m.assign(a_pod)
    m.listed([])
    m.done("a")
    a = container("a", "ca")
    a = replace(a, labels={**a.labels, LABEL_SPEC_HASH: spec_hash(probed)})
    out = m.listed([a], T0 + 1)
    (probe,) = [i for i in out if isinstance(i, RunProbe)]
    m.feed(ProbeFinished(probe.target, ProbeResult(True)))
    assert _ready(m.listed([a], T0 + 1.5)) is True

    m.feed(ContainerDied(_died(a), T0 + 5))
    again = replace(a, name=f"{a.name}.restarted-1", started_at=T0 + 6)
    assert _ready(m.feed(ContainerRan(again, "ca", T0 + 6))) is False
    m.done("a")
    assert _ready(m.listed([again], T0 + 6.5)) is False


def _ready(out: list[Instruction]) -> bool:
    (publish,) = [i for i in out if isinstance(i, Publish)]
    (report,) = publish.reports
    return report.containers[0].ready
