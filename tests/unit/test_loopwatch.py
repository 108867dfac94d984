"""The agent's loop watchdog decision, on a fake clock (agent/state/loopwatch.py).

A hung agent (its event loop stuck, its gRPC core still answering pings) keeps its
session stream open; at 5,000 nodes its stretched lease (22 s) found it in 12-21 s. The
watchdog ends its connections once the loop has missed 2.5 s of ticks while the watcher
itself looked steadily, so the master finds it as it finds a killed agent; a watcher
starved along with the loop (a loaded machine) never judges.
"""

from __future__ import annotations

from dataclasses import replace

from agent.state.loopwatch import (
    LoopWatch,
    LoopWatchSettings,
    Recovered,
    Verdict,
    Wedged,
    look,
    start_watch,
    worst_detection,
)
from master.controllers.heartbeats import heartbeat_plan
from master.controllers.lifecycle import NodeHealthSettings
from tests.unit.test_node_liveness import _manager, _ready, _ticks

SETTINGS = LoopWatchSettings()


def _looks(
    watch: LoopWatch, start: float, seconds: float, tick: float | None, every: float = 0.25
) -> tuple[LoopWatch, list[tuple[float, Verdict]]]:
    """The watcher looks every `every` s from `start` for `seconds`; the loop's tick stays
    at `tick` (None: the loop ticks at every look)."""
    verdicts: list[tuple[float, Verdict]] = []
    now = start
    while now < start + seconds - 1e-9:
        now += every
        watch, verdict = look(watch, now, now if tick is None else tick, SETTINGS)
        if verdict is not None:
            verdicts.append((now, verdict))
    return watch, verdicts


def test_a_loop_that_ticks_is_never_wedged() -> None:
    _, verdicts = _looks(start_watch(0.0), 0.0, 60.0, tick=None)

    assert verdicts == []


def test_a_loop_silent_while_the_watcher_looks_steadily_is_wedged_once() -> None:
    watch, _ = _looks(start_watch(0.0), 0.0, 10.0, tick=None)

    _, verdicts = _looks(watch, 10.0, 20.0, tick=10.0)  # stuck from 10.0 on

    assert len(verdicts) == 1
    at, verdict = verdicts[0]
    assert at == 12.5 and verdict == Wedged(2.5)


def test_a_silence_shorter_than_the_threshold_is_not() -> None:
    watch, _ = _looks(start_watch(0.0), 0.0, 10.0, tick=None)

    watch, verdicts = _looks(watch, 10.0, 2.25, tick=10.0)
    watch, later = _looks(watch, 12.25, 10.0, tick=None)

    assert verdicts == [] and later == []


def test_a_watcher_starved_with_the_loop_never_judges() -> None:
    """Load 30: the loop does not run for 20 s, but the watcher's own looks come 1.5 s
    apart (it needs the CPU and the GIL as the loop does): it cannot tell, so it waits."""
    watch, _ = _looks(start_watch(0.0), 0.0, 10.0, tick=None)

    _, verdicts = _looks(watch, 10.0, 20.0, tick=10.0, every=1.5)

    assert verdicts == []


def test_silence_counts_only_from_when_the_watcher_looks_steadily_again() -> None:
    watch, _ = _looks(start_watch(0.0), 0.0, 10.0, tick=None)
    watch, starved = _looks(watch, 10.0, 6.0, tick=10.0, every=2.0)  # until 16.0

    _, verdicts = _looks(watch, 16.0, 5.0, tick=10.0)

    assert starved == []
    assert [at for at, _ in verdicts] == [18.5]  # 2.5 s of steady looks after 16.0
    assert verdicts[0][1] == Wedged(8.5)


def test_the_loop_running_again_is_reported_with_the_stall() -> None:
    watch, _ = _looks(start_watch(0.0), 0.0, 10.0, tick=None)
    watch, wedged = _looks(watch, 10.0, 6.0, tick=10.0)

    watch, verdict = look(watch, 16.25, 16.2, SETTINGS)

    assert [v for _, v in wedged] == [Wedged(2.5)]
    assert isinstance(verdict, Recovered) and abs(verdict.stalled_for - 6.2) < 1e-9
    assert watch.wedged_tick is None
    # A second wedge later gets a verdict of its own.
    _, again = _looks(watch, 16.25, 5.0, tick=16.2)
    assert [type(v) for _, v in again] == [Wedged]


def test_settings_can_be_tightened() -> None:
    quick = replace(SETTINGS, wedged_after=1.0)

    watch, verdict = look(LoopWatch(1.0, 0.0), 1.25, 0.0, quick)

    assert verdict == Wedged(1.25) and watch.wedged_tick == 0.0


def test_a_wedged_agent_of_a_5000_node_cluster_is_not_ready_within_5_s() -> None:
    """Its gRPC core answers pings, so its stream stays open, and its lease is 22 s
    (heartbeat_plan at 5,000 nodes): before the watchdog its lease alone found it.
    The watchdog's verdict ends its connections: the stream ends as a killed agent's."""
    clock, state, leases, manager = _manager()
    plan = heartbeat_plan(5000, 1.0, 3.0)
    for name in ("n1", "n2", "n3"):
        leases.set_lease(name, plan.lease)
    _ticks(clock, manager, 1.0)
    leases.renew("n1", clock.monotonic())  # its last heartbeat, just before the wedge
    # The loop's last tick was almost a period before the wedge: the worst case.
    wedged_at = clock.monotonic()
    last_tick = wedged_at - SETTINGS.period + 0.01
    watch = LoopWatch(looked_at=wedged_at, steady_since=wedged_at - 5.0)
    detected = None
    while clock.monotonic() - wedged_at < 30.0 and detected is None:
        _ticks(clock, manager, 0.25)
        watch, verdict = look(watch, clock.monotonic(), last_tick, SETTINGS)
        if isinstance(verdict, Wedged):
            leases.session_ended("n1", clock.monotonic())  # the master reads its FIN
        if not _ready(state, "n1"):
            detected = clock.monotonic() - wedged_at

    assert plan.lease > 20.0
    assert detected is not None and detected <= 5.0
    assert detected <= worst_detection(SETTINGS, NodeHealthSettings().session_grace, 0.25)
    assert _ready(state, "n2") and _ready(state, "n3")


def test_worst_detection_is_within_5_s_with_the_defaults() -> None:
    assert worst_detection(SETTINGS, NodeHealthSettings().session_grace, 0.25) <= 5.0


def test_connections_to_the_master_are_matched_through_dual_stack_sockets() -> None:
    from agent.watchdog import master_endpoints, unmapped

    assert unmapped("::ffff:127.0.0.1") == "127.0.0.1"  # how gRPC's sockets show
    assert unmapped("::1") == "::1" and unmapped("10.0.0.7") == "10.0.0.7"
    assert master_endpoints(["127.0.0.1:7400", "[::1]:7401", "nonsense"]) == {
        ("127.0.0.1", 7400),
        ("::1", 7401),
    }
