"""The LB bench's paired throughput ratio (tests/bench/lb.py `paired_ratios`)."""

from __future__ import annotations

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
