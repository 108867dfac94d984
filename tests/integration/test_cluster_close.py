"""The test cluster's close runs every cleanup step even when one fails: a container the
engine would not remove (its "unable to remove filesystem" race under load) left the
master's HAProxy running after two failed runs of test_pod_sandbox_cluster.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import LocalCluster


def test_a_failed_step_does_not_skip_the_rest_and_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = LocalCluster(tmp_path, docker_client=object())  # type: ignore[arg-type]
    ran: list[str] = []

    def step(name: str, fails: bool = False) -> Any:
        def run() -> None:
            ran.append(name)
            if fails:
                raise RuntimeError(f"{name} failed")

        return run

    monkeypatch.setattr(cluster, "_stop_processes", step("processes"))
    monkeypatch.setattr(cluster, "_remove_containers", step("containers", fails=True))
    monkeypatch.setattr(cluster, "_remove_node_dns", step("dns"))
    monkeypatch.setattr(cluster, "_remove_node_objects", step("objects", fails=True))
    monkeypatch.setattr(cluster, "_remove_volume_files", step("files"))
    monkeypatch.setattr(cluster, "_stop_proxies", step("proxies"))

    with pytest.raises(RuntimeError, match="containers failed"):
        cluster.close()
    assert ran == ["processes", "containers", "dns", "objects", "files", "proxies"]
