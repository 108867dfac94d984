"""apply_to_running's trials are independent: a system is asked only once the earlier
trials' containers are gone, pod sandbox holders and standbys included, and the engine was
then quiet (tests/bench/engine.py `wait_clear`). Fakes for the engine: the rule is pure."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from tests.bench import report
from tests.bench.apply_to_running import Outcome, _run_trials
from tests.bench.engine import Clear, Timing, wait_clear


class Engine:
    """A scripted engine: the containers each look finds, the verdict of each quiet window,
    and a clock that moves 0.05 s a pause and 0.3 s a window."""

    def __init__(self, looks: Sequence[Sequence[str]], windows: Sequence[bool]) -> None:
        self.looks = [tuple(look) for look in looks]
        self.windows = list(windows)
        self.now = 0.0
        self.calls: list[str] = []

    def leftovers(self) -> Sequence[str]:
        self.calls.append("look")
        return self.looks.pop(0) if len(self.looks) > 1 else self.looks[0]

    def quiet(self) -> bool:
        self.calls.append("window")
        self.now += 0.3
        return self.windows.pop(0) if len(self.windows) > 1 else self.windows[0]

    def clock(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, within: float = 60.0, quiet_within: float = 15.0) -> Clear:
        return wait_clear(self.leftovers, self.quiet, within, self.clock, self.pause, quiet_within)


def test_a_standby_left_without_events_is_waited_for() -> None:
    # The trial's pod containers are gone; their standby holder sits there, no event
    # comes (the agent's next sweep removes it): a quiet engine is not a clear one.
    engine = Engine(looks=[["standby"], ["standby"], ["standby"], []], windows=[True])
    gate = engine.wait()
    assert gate.clear
    assert engine.calls == ["look", "look", "look", "look", "window"]


def test_a_container_made_during_the_quiet_window_is_looked_for_again() -> None:
    # Nothing left, but the window saw an event: a standby being made. The next look
    # finds it, and the gate waits for it to go before another window.
    engine = Engine(looks=[[], ["standby"], [], []], windows=[False, True])
    gate = engine.wait()
    assert gate.clear
    assert engine.calls == ["look", "window", "look", "look", "window"]


def test_gives_up_at_the_deadline_and_names_what_is_left() -> None:
    engine = Engine(looks=[["ghost"]], windows=[True])
    gate = engine.wait(within=2.0)
    assert not gate.clear
    assert gate.left == ("ghost",)
    assert 2.0 <= gate.waited < 2.2
    assert "window" not in engine.calls


def test_an_engine_never_quiet_is_given_up_sooner_than_a_leftover() -> None:
    # Nothing of ours is left, but other users' events never pause: the trial runs after
    # quiet_within, as settle's 15 s did, not after the minute a leftover is waited for.
    engine = Engine(looks=[[]], windows=[False])
    gate = engine.wait(within=60.0, quiet_within=3.0)
    assert not gate.clear
    assert gate.left == ()
    assert 3.0 <= gate.waited < 4.0


def test_a_clear_quiet_engine_costs_one_look_and_one_window() -> None:
    engine = Engine(looks=[[]], windows=[True])
    assert engine.wait() == Clear(0.3, True)


def test_every_trial_of_every_system_waits_for_the_gate() -> None:
    """_run_trials asks the gate before each system's trial, and a trial starts only after
    the gate said clear (on the old code, trials were asked after the engine was quiet,
    whatever was left)."""
    order: list[str] = []
    left = {"containers": 0}

    def gate() -> Clear:
        order.append("gate")
        left["containers"] = 0
        return Clear(0.0, True)

    def runner(system: str) -> Callable[[str, int], Timing]:
        def run(name: str, n: int) -> Timing:
            assert left["containers"] == 0, f"{system} asked with the last trial's left"
            order.append(system)
            left["containers"] = n  # what its teardown may leave (standbys)
            return Timing(1.0, 1.0)

        return run

    systems = [report.PINNACE, report.PARALLEL_RUN]
    args = argparse.Namespace(replica_counts=[3], trials=2)
    outcome = Outcome()
    _run_trials(args, {s: runner(s) for s in systems}, "run", outcome, gate)
    assert order == ["gate", report.PINNACE, "gate", report.PARALLEL_RUN] * 2
    assert outcome.results[report.PINNACE][3] == [1.0, 1.0]
