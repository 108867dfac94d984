"""A die event decided from the event itself (agent/death_events.py, the state machine's
DieSeen): the restart needs no inspect where the event and the last list say all an
inspect would, and goes through the inspect everywhere else. Times on a fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.death_events import EVENT_TIME_SLACK, death_from_event
from agent.model import PodAssignment, PodSpec
from agent.runtime.port import LABEL_SPEC_HASH, ContainerInfo, RuntimeEvent
from agent.state.events import (
    ContainerDied,
    ContainerRan,
    DieSeen,
    FenceRequested,
    InspectDeath,
    Instruction,
    Publish,
    Relist,
    RunPodActions,
)
from agent.sync import BACKOFF_RESET_AFTER, ContainerBackoff, RestartContainer
from tests.unit.test_agent_state import SPEC, T0, Machine, actions, container, pod


def _die(c: ContainerInfo, exit_code: int | None = 137, at: float = T0 + 5) -> RuntimeEvent:
    """The die event Docker sends for `c` (its labels, name and exit code)."""
    return RuntimeEvent("die", c.id, c.pod, c.container, at, exit_code=exit_code, name=c.name)


def _dead(c: ContainerInfo, exit_code: int = 137, at: float = T0 + 5) -> ContainerInfo:
    """`c` as an inspect after its exit describes it."""
    return replace(c, state="exited", exit_code=exit_code, finished_at=at, ports={})


A = container("a", "ca")
DESIRED = {"a": pod("a")}


def test_a_die_of_the_listed_run_is_the_container_as_an_inspect_would_show_it() -> None:
    verdict = death_from_event(_die(A), [A], DESIRED, {})

    assert verdict.died == _dead(A)
    assert verdict.why_not == ""


def test_an_oom_event_of_the_same_run_makes_it_oom_killed() -> None:
    assert death_from_event(_die(A), [A], DESIRED, {}, oom_at=T0 + 4.9).died == replace(
        _dead(A), oom_killed=True
    )
    # an oom of a run before this one says nothing of this one
    assert death_from_event(_die(A), [A], DESIRED, {}, oom_at=T0 - 1).died == _dead(A)


def test_the_ten_minute_reset_counts_from_the_listed_start_to_the_event() -> None:
    backing_off = {("a", "web"): ContainerBackoff(restart_count=3, next_delay=8.0)}
    late = T0 + BACKOFF_RESET_AFTER + EVENT_TIME_SLACK

    assert death_from_event(_die(A, at=late), [A], DESIRED, backing_off).died is not None
    # near the mark the event's time (later than FinishedAt) cannot tell: inspected
    near = death_from_event(_die(A, at=late - 0.5), [A], DESIRED, backing_off)
    assert near.died is None and "back-off" in near.why_not
    # the first restart goes at once whether or not the back-off would start again
    assert death_from_event(_die(A, at=T0 + BACKOFF_RESET_AFTER), [A], DESIRED, {}).died


@pytest.mark.parametrize(
    ("event", "observed", "desired", "why"),
    [
        (_die(A, exit_code=None), [A], DESIRED, "does not say"),
        (replace(_die(A), name=""), [A], DESIRED, "does not say"),
        (_die(A), [], DESIRED, "does not hold"),
        (_die(A), [_dead(A)], DESIRED, "exited"),
        # renamed since the list (started again in place, the rename under way)
        (replace(_die(A), name=f"{A.name}.restarted-1"), [A], DESIRED, "name or labels"),
        (replace(_die(A), container="sidecar"), [A], DESIRED, "name or labels"),
        (_die(A, at=T0 - 1), [A], DESIRED, "older than the run"),
        (_die(A), [A], {}, "not assigned"),
        (_die(A), [A], {"a": replace(pod("a"), stop=True)}, "not assigned"),
        (
            _die(A),
            [replace(A, labels={**A.labels, LABEL_SPEC_HASH: "old"})],
            DESIRED,
            "spec asks for",
        ),
        (
            _die(A),
            [A],
            {"a": PodAssignment("a", 1, PodSpec((replace(SPEC, config_error="no cm"),)))},
            "spec asks for",
        ),
        (_die(A), [A], {"a": PodAssignment("a", 1, PodSpec((SPEC,), "Never"))}, "Never"),
        (
            _die(A, exit_code=0),
            [A],
            {"a": PodAssignment("a", 1, PodSpec((SPEC,), "OnFailure"))},
            "OnFailure",
        ),
    ],
)
def test_the_event_is_not_enough(
    event: RuntimeEvent,
    observed: list[ContainerInfo],
    desired: dict[str, PodAssignment],
    why: str,
) -> None:
    verdict = death_from_event(event, observed, desired, {})

    assert verdict.died is None
    assert why in verdict.why_not


def test_a_restart_that_waits_out_a_back_off_or_was_handled_is_inspected() -> None:
    waits = {("a", "web"): ContainerBackoff(restart_count=1, next_delay=1.0)}
    handled = {("a", "web"): ContainerBackoff(handled_exit=A.run_key)}

    assert "back-off" in death_from_event(_die(A), [A], DESIRED, waits).why_not
    assert "handled" in death_from_event(_die(A), [A], DESIRED, handled).why_not


def test_a_container_stopped_for_its_liveness_probe_failed_whatever_its_exit_code() -> None:
    on_failure = {"a": PodAssignment("a", 1, PodSpec((SPEC,), "OnFailure"))}
    unhealthy = {("a", "web"): ContainerBackoff(unhealthy_id=A.run_key, unhealthy_message="x")}

    assert death_from_event(_die(A, exit_code=0), [A], on_failure, unhealthy).died is not None


# -- the state machine: DieSeen ---------------------------------------------------------------


def _running(m: Machine) -> ContainerInfo:
    m.assign(pod("a"), pod("b"))
    m.listed([])
    m.done("a", "b")
    m.listed([A, container("b", "cb")])
    return A


def _restart(out: list[Instruction]) -> RestartContainer:
    (run,) = [i for i in out if isinstance(i, RunPodActions)]
    (restart,) = run.actions
    assert isinstance(restart, RestartContainer)
    return restart


def _status(out: list[Instruction], pod_name: str = "a") -> tuple[str, str, int, int]:
    (publish,) = [i for i in out if isinstance(i, Publish)]
    (report,) = [r for r in publish.reports if r.pod_name == pod_name]
    c = report.containers[0]
    return c.state, c.reason, c.exit_code, c.restart_count


def test_a_die_event_restarts_at_once_exactly_as_the_inspected_death_does() -> None:
    by_event, by_inspect = Machine(), Machine()
    a = _running(by_event)
    _running(by_inspect)

    out = by_event.feed(DieSeen(_die(a), 0.0, T0 + 5))
    expected = by_inspect.feed(ContainerDied(_dead(a), T0 + 5))

    assert not any(isinstance(i, (InspectDeath, Relist)) for i in out)
    assert out == expected
    restart = _restart(out)
    assert (restart.container_id, restart.restart_count, restart.immediate) == ("ca", 1, True)
    assert restart.reason == "container exited (last exit code 137); restart #1"
    assert _status(out) == ("terminated", "Error", 137, 1)
    assert by_event.state.pods.backoff == by_inspect.state.pods.backoff


def test_an_oom_killed_container_is_reported_and_counted_as_one() -> None:
    m = Machine()
    a = _running(m)

    out = m.feed(DieSeen(_die(a), T0 + 4.99, T0 + 5))

    assert _restart(out).reason == "container exited (last exit code 137 (OOMKilled)); restart #1"
    assert _status(out) == ("terminated", "OOMKilled", 137, 1)
    assert m.state.pods.backoff[("a", "web")].last_oom is True


def test_the_second_crash_within_the_back_off_is_inspected() -> None:
    m = Machine()
    a = _running(m)
    m.feed(DieSeen(_die(a), 0.0, T0 + 5))
    again = replace(a, name=f"{a.name}.restarted-1", started_at=T0 + 6)
    m.feed(ContainerRan(again, "ca", T0 + 6))
    m.done("a")
    m.listed([again, container("b", "cb")], T0 + 6.5)

    out = m.feed(DieSeen(_die(again, exit_code=2, at=T0 + 7), 0.0, T0 + 7))

    (inspect,) = [i for i in out if isinstance(i, InspectDeath)]
    assert inspect.container_id == "ca" and "back-off" in inspect.why
    assert actions(out) == {}
    # the inspect's answer backs off as before: CrashLoopBackOff, counted once
    waiting = m.feed(ContainerDied(_dead(again, exit_code=2, at=T0 + 7), T0 + 7))
    assert actions(waiting) == {}
    assert _status(waiting)[1:] == ("CrashLoopBackOff", 2, 1)


def test_a_die_event_the_last_list_cannot_be_trusted_for_asks_for_a_relist() -> None:
    m = Machine()
    a = _running(m)
    m.feed(FenceRequested("test"))
    assert m.feed(DieSeen(_die(a), 0.0, T0 + 5)) == [Relist()]

    m = Machine()
    a = _running(m)
    m.feed(DieSeen(_die(a), 0.0, T0 + 5))  # restart dispatched: "a" is busy
    assert m.feed(DieSeen(_die(a), 0.0, T0 + 5)) == [Relist()]
