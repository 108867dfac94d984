"""tests.support.exec_output: a command's output, never the empty answer Docker sometimes gives.

The fake container below answers like the engine does: the exit status always, the output
sometimes not at all (moby/moby#27289). Real Docker showed it at load 14-26 (9 of 1,000 short
execs); here each case is played out exactly.
"""

from __future__ import annotations

import pytest

from tests.support import ExecOutputLost, exec_output


class _Engine:
    """Runs the marker script the way sh would, losing the output of the first `lose` calls."""

    def __init__(self, output: bytes, code: int = 0, lose: int = 0) -> None:
        self.output, self.code, self.lose = output, code, lose
        self.calls: list[tuple[list[str], str]] = []

    def exec_run(self, cmd: list[str], user: str = "") -> tuple[int, bytes]:
        self.calls.append((cmd, user))
        if len(self.calls) <= self.lose:
            return self.code, b""
        return self.code, self.output + b"\n@@pinnace-exec-end\n"


def test_the_command_runs_under_sh_with_its_arguments_and_user() -> None:
    engine = _Engine(b"uid=1000")

    assert exec_output(engine, ["id", "-u"], user="1000") == (0, b"uid=1000")

    ((cmd, user),) = engine.calls
    assert cmd[:2] == ["sh", "-c"] and cmd[3:] == ["sh", "id", "-u"] and user == "1000"


def test_a_lost_output_of_a_command_that_may_run_again_is_asked_again() -> None:
    engine = _Engine(b"kept\n", lose=2)

    assert exec_output(engine, ["cat", "/data/k"]) == (0, b"kept\n")  # before: (0, b"")
    assert len(engine.calls) == 3


def test_a_lost_output_of_a_command_that_must_run_once_fails_saying_so() -> None:
    engine = _Engine(b"", lose=1)

    with pytest.raises(ExecOutputLost, match="without its output"):
        exec_output(engine, ["sh", "-c", "echo more >> /f"], rerun=False)
    assert len(engine.calls) == 1


def test_the_exit_status_and_an_output_without_a_final_newline_come_back_as_they_were() -> None:
    assert exec_output(_Engine(b"dd: No space left on device", code=1), ["dd"]) == (
        1,
        b"dd: No space left on device",
    )
