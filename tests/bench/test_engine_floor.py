"""The engine floor's per-round differences from plain numbers (no engine)."""

from __future__ import annotations

import pytest

from tests.bench.engine_floor import FLOORS, main, paired_lines


def test_paired_lines_take_each_rounds_difference_not_the_tables() -> None:
    found: dict[str, list[float]] = {name: [] for name in FLOORS}
    # Exited starts are slow in round 1 and fast in round 2; the created-ahead start is
    # 0.1 s faster than the exited one in the same round both times.
    found[FLOORS[0]] += [3.0, 1.0]
    found[FLOORS[1]] += [2.9, 0.9]
    found[FLOORS[2]] += [3.2, 1.2]

    lines = paired_lines(found)

    assert lines[0] == (
        f"{FLOORS[1]} - {FLOORS[0]}, per round: median -0.10 s, p90 -0.10 s, faster in 2/2"
    )
    assert lines[1].startswith(f"{FLOORS[2]} - {FLOORS[0]}, per round: median +0.20 s")
    assert lines[1].endswith("faster in 0/2")


def test_paired_lines_skip_pairs_without_rounds() -> None:
    found: dict[str, list[float]] = {name: [] for name in FLOORS}

    assert paired_lines(found) == []


@pytest.mark.parametrize("given", ["--help", "x", "0"])
def test_the_rounds_argument_is_checked_before_any_engine_call(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--help` was read as the number of rounds: a ValueError traceback.
    with pytest.raises(SystemExit) as stopped:
        main([given])

    err = capsys.readouterr().err
    if given == "--help":
        assert stopped.value.code == 0
    else:
        assert stopped.value.code == 2
        assert f"must be a whole number >= 1, got '{given}'" in err
