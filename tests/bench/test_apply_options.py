"""apply_to_running's options: --pod-sandbox reaches the agents of both trees."""

from __future__ import annotations

from tests.bench.apply_to_running import parse_args


def test_pod_sandbox_is_off_unless_asked() -> None:
    assert parse_args([]).pod_sandbox is False
    assert parse_args(["--pod-sandbox"]).pod_sandbox is True
