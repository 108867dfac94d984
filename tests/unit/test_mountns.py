"""An agent whose mounts the engine would not see uses no mounts (agent/mountns.py).

The compose demo's agents hold CAP_SYS_ADMIN (for their pods' network namespaces), so a
tmpfs or loop mount succeeds there -- in the agent container's own mount namespace,
where the engine, binding the directory by path on the host, never sees it. Both
mounting features must then say why they fall back, before they try.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from agent import claim_disks, memory_volumes
from agent.memory_volumes import MemoryVolumes
from agent.mountns import mount_namespace_problem, why_mounts_stay_here


def test_one_namespace_or_an_unknown_own_one_is_no_problem() -> None:
    assert mount_namespace_problem("mnt:[1]", ["mnt:[1]", "mnt:[1]"]) == ""
    assert mount_namespace_problem("mnt:[1]", []) == ""
    assert mount_namespace_problem("", ["mnt:[2]", None]) == ""


def test_an_ancestor_in_another_namespace_is_the_reason() -> None:
    why = mount_namespace_problem("mnt:[5]", ["mnt:[5]", "mnt:[1]"])
    assert "mount namespace of its own" in why


def test_an_ancestor_hiding_its_namespace_is_a_reason() -> None:
    # A compose agent's parent: the runtime's shim, with more capabilities than the agent.
    assert "hides its mount namespace" in mount_namespace_problem("mnt:[5]", [None])


def test_a_process_in_its_machines_or_containers_one_namespace_may_mount() -> None:
    # The tests run where PID 1 is (the host, or a container with its own PID namespace).
    assert why_mounts_stay_here() == ""


def test_memory_volumes_fall_back_without_trying_a_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[Sequence[str]] = []

    def run(argv: Sequence[str]) -> str:
        ran.append(argv)
        return ""

    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(memory_volumes, "why_mounts_stay_here", lambda: "own namespace")
    assert MemoryVolumes(tmp_path, run=run).why_unavailable() == "own namespace"
    assert ran == []


def test_claim_disks_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(claim_disks, "why_mounts_stay_here", lambda: "own namespace")
    assert claim_disks.why_unavailable("/nonexistent") == "own namespace"
