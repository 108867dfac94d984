"""The LB bench's paired throughput ratio (tests/bench/lb.py `paired_ratios`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import lb
from tests.bench.lb_wrk import WrkResult

DIRECT, PROXIED = 1001, 2002


def test_pairs_run_both_sides_back_to_back_in_alternating_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    # The machine slows down run after run: a ratio across pairs would mix the moments.
    speed = iter([1000.0, 900.0, 800.0, 720.0, 600.0, 540.0])

    def fake_wrk(port: int, seconds: int, threads: int, connections: int) -> WrkResult:
        assert (seconds, threads, connections) == (2, 2, 16)
        calls.append(port)
        rps = next(speed)
        return WrkResult(rps, 1.0, 2.0, int(rps * seconds), 0)

    monkeypatch.setattr(lb, "run_wrk", fake_wrk)
    args = lb.parse_args(["--wrk-pairs", "3", "--pair-seconds", "2"])
    ratios = lb.paired_ratios(args, DIRECT, PROXIED)
    assert calls == [DIRECT, PROXIED, PROXIED, DIRECT, DIRECT, PROXIED]
    assert ratios == pytest.approx([0.9, 800 / 720, 0.9])


def test_pairs_need_a_positive_count_and_duration() -> None:
    for bad in (["--wrk-pairs", "0"], ["--pair-seconds", "0"]):
        with pytest.raises(SystemExit):
            lb.parse_args(bad)


def test_rounds_run_three_targets_in_every_order_and_ratio_within_the_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct, pod_ip, proxied = ("127.0.0.1", DIRECT), ("172.17.0.4", 80), ("127.0.0.1", PROXIED)
    rps = {direct: 1000.0, pod_ip: 1250.0, proxied: 900.0}
    calls: list[tuple[str, int]] = []
    # Each round runs slower than the last: ratios across rounds would mix the moments.
    slowdown = [1.0]

    def fake_wrk(
        port: int, seconds: int, threads: int, connections: int, host: str = "127.0.0.1"
    ) -> WrkResult:
        calls.append((host, port))
        if len(calls) % 3 == 1:
            slowdown[0] *= 0.5
        r = rps[(host, port)] * slowdown[0]
        return WrkResult(r, 1.0, 2.0, int(r * seconds), 0)

    monkeypatch.setattr(lb, "run_wrk", fake_wrk)
    args = lb.parse_args(["--wrk-pairs", "6", "--only-throughput"])
    issue, like, proxy_cost = lb.rotated_ratios(args, direct, pod_ip, proxied)

    rounds = [tuple(calls[i : i + 3]) for i in range(0, 18, 3)]
    assert len(set(rounds)) == 6  # every order once
    assert issue == pytest.approx([0.9] * 6)
    assert like == pytest.approx([0.72] * 6)
    assert proxy_cost == pytest.approx([1.25] * 6)


def test_four_targets_take_every_position_within_eight_rounds() -> None:
    targets = [("127.0.0.1", p) for p in (1, 2, 3, 4)]
    orders = [lb.round_order(targets, i) for i in range(8)]

    for position in range(4):
        assert {o[position] for o in orders} == set(targets)
    assert all(sorted(o) == targets for o in orders)


def test_compare_needs_only_throughput_and_a_pinnace_tree(tmp_path: Path) -> None:
    tree = str(Path(__file__).resolve().parents[2])
    for bad in (["--compare", str(tmp_path), "--only-throughput"], ["--compare", tree]):
        with pytest.raises(SystemExit):
            lb.parse_args(bad)
    assert lb.parse_args(["--compare", tree, "--only-throughput"]).compare == Path(tree)
