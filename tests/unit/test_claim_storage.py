"""Claim sizes, reclaim and growth: the pure decisions on both sides, and the app layer.

Agent: how big a claim's file is made and grown (agent/claim_disks.py), which
volumes an order removes and which filesystems to grow (agent/claim_volumes.py),
and the commands ClaimDisks runs, through a fake command runner. Master: which
volumes a node must remove, what its volume report changes
(master/controllers/claims.py), deleting a claim by policy, growing a claim and
refusing to shrink it (master/app).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from agent.claim_disks import (
    MIB,
    ClaimDisks,
    DiskError,
    image_bytes,
    loops_of,
    mkfs_commands,
    mounts_of,
    shortfall,
)
from agent.claim_volumes import ClaimOrders, claim_sizes, keep_once, plan_growth, plan_removals
from agent.model import PodAssignment, PodSpec, Volume
from agent.runtime.fake_runtime import FakeRuntime
from agent.runtime.port import LABEL_NODE, LABEL_VOLUME_KIND, ContainerInfo, VolumeInfo
from kernel.clock import FakeClock
from master.app.apply import apply_objects
from master.app.delete import delete_objects
from master.app.errors import AppError
from master.controllers.claims import (
    VolumeUse,
    apply_volume_report,
    reclaim_policy,
    to_remove,
)
from master.model import Event, ObjectMeta, PersistentVolume, PersistentVolumeClaim
from master.state import ClusterState
from master.store import MemoryStore

GI = 1 << 30


@pytest.mark.parametrize("request_bytes", [1 * MIB, 64 * MIB, GI, 20 * GI, 500 * GI])
def test_a_claim_file_leaves_room_for_ext4_and_is_whole_mib(request_bytes: int) -> None:
    size = image_bytes(request_bytes)
    assert size % MIB == 0
    assert size > request_bytes * 1.02
    assert size < request_bytes * 1.03 + 1100 * MIB  # journal at most 1 GiB


def test_shortfall_is_zero_when_the_filesystem_holds_the_request_else_whole_mib() -> None:
    assert shortfall(64 * MIB, 64 * MIB) == 0
    assert shortfall(65 * MIB, 64 * MIB) == 0
    missing = shortfall(63 * MIB, 64 * MIB)
    assert missing % MIB == 0 and missing >= MIB


def test_loops_of_reads_losetup_j() -> None:
    out = "/dev/loop3: [2049]:131 (/var/lib/pinnace/claims/n1/pinnace-pvc-1.img)\n"
    assert loops_of(out) == ["/dev/loop3"]
    assert loops_of("") == []


def _pod(name: str, *volumes: Volume) -> PodAssignment:
    return PodAssignment(name=name, epoch=1, spec=PodSpec(containers=(), volumes=volumes))


def _claim_volume(volume: str, size: int) -> Volume:
    return Volume("data", "persistentVolumeClaim", volume_name=volume, claim_bytes=size)


def test_claim_sizes_take_the_largest_request_per_volume() -> None:
    pods = [
        _pod("a", _claim_volume("v1", 64 * MIB), Volume("tmp", "emptyDir")),
        _pod("b", _claim_volume("v1", 128 * MIB), _claim_volume("v2", 0)),
    ]
    assert claim_sizes(pods) == {"v1": 128 * MIB}


def test_removals_name_only_present_claim_volumes() -> None:
    volumes = [
        VolumeInfo("v1", {LABEL_VOLUME_KIND: "claim"}),
        VolumeInfo("e1", {LABEL_VOLUME_KIND: "emptyDir"}),
    ]
    assert plan_removals({"v1", "e1", "gone"}, volumes) == ["v1"]


def test_growth_is_planned_for_measured_filesystems_smaller_than_asked() -> None:
    sizes = {"small": 128 * MIB, "fine": 64 * MIB, "unmounted": GI}
    measured = {"small": (0, 65 * MIB), "fine": (0, 65 * MIB), "unmounted": None}
    assert plan_growth(sizes, measured) == ["small"]


class _Commands:
    """A fake command runner: records argv; one loop device, attached by `--find`."""

    def __init__(self, attached: bool = True) -> None:
        self.calls: list[list[str]] = []
        self.attached = attached

    def __call__(self, argv: Sequence[str]) -> str:
        self.calls.append(list(argv))
        if argv[:2] == ["losetup", "-j"]:
            return f"/dev/loop9: [1]:2 ({argv[2]})\n" if self.attached else ""
        if argv[:2] == ["losetup", "--find"]:
            self.attached = True
            return "/dev/loop9\n"
        return ""


def test_removing_a_claim_detaches_only_the_loop_devices_of_its_own_file(tmp_path: Path) -> None:
    run = _Commands()
    disks = ClaimDisks(tmp_path, run)
    disks.image("v1").write_bytes(b"")
    disks.mountpoint("v1").mkdir()

    disks.remove("v1")

    image = str(tmp_path / "v1.img")
    assert run.calls == [["losetup", "-j", image], ["losetup", "-d", "/dev/loop9"]]
    assert not disks.image("v1").exists() and not disks.mountpoint("v1").exists()


def test_a_new_claim_file_is_allocated_whole_then_mounted_with_direct_io(tmp_path: Path) -> None:
    run = _Commands(attached=False)
    disks = ClaimDisks(tmp_path, run)

    mounted = disks.ensure("v1", 64 * MIB)

    image = tmp_path / "v1.img"
    assert run.calls[0][0] == "mkfs.ext4" and run.calls[0][-1] == str(tmp_path / "v1.making")
    assert run.calls[1:] == [
        ["losetup", "-j", str(image)],
        ["losetup", "--find", "--show", "--direct-io=on", str(image)],
        ["mount", "-t", "ext4", "-o", "nodev,nosuid", "/dev/loop9", str(tmp_path / "v1")],
    ]
    assert image.stat().st_size == image_bytes(64 * MIB)
    assert image.stat().st_blocks * 512 >= image_bytes(64 * MIB)  # allocated, not sparse
    assert mounted == str(tmp_path / "v1") and not (tmp_path / "v1.making").exists()


def test_claim_filesystems_ask_for_fast_commits_and_fall_back_on_older_e2fsprogs(
    tmp_path: Path,
) -> None:
    class OldMkfs(_Commands):
        def __call__(self, argv: Sequence[str]) -> str:
            if argv[0] == "mkfs.ext4" and "fast_commit" in argv:
                self.calls.append(list(argv))
                raise DiskError("mkfs.ext4: Invalid filesystem option set: fast_commit")
            return super().__call__(argv)

    run = OldMkfs(attached=False)

    ClaimDisks(tmp_path, run).ensure("v1", 64 * MIB)

    mkfs = [c for c in run.calls if c[0] == "mkfs.ext4"]
    making = str(tmp_path / "v1.making")
    assert mkfs == mkfs_commands(making)
    assert mkfs[0][mkfs[0].index("-O") + 1] == "fast_commit"
    assert "-O" not in mkfs[-1] and mkfs[-1][-1] == making


def test_a_loop_device_left_attached_to_the_file_is_reused(tmp_path: Path) -> None:
    run = _Commands(attached=True)
    disks = ClaimDisks(tmp_path, run)
    disks.image("v1").write_bytes(b"")

    disks.adopt()

    assert ["losetup", "--find", "--show", "--direct-io=on", str(disks.image("v1"))] not in (
        run.calls
    )
    assert run.calls[-1][:5] == ["mount", "-t", "ext4", "-o", "nodev,nosuid"]


def test_mounts_of_counts_a_devices_mounts_in_proc_mounts() -> None:
    text = (
        "/dev/loop3 /var/lib/pinnace/claims/n1/v ext4 rw 0 0\n"
        "/dev/loop3 /var/lib/docker/volumes/v/_data ext4 rw 0 0\n"
        "proc /proc proc rw 0 0\n"
    )
    assert mounts_of(text, ["/dev/loop3"]) == 2
    assert mounts_of(text, ["/dev/loop30"]) == 0
    assert mounts_of(text, []) == 0


# -- master ------------------------------------------------------------------------------


def _pv(name: str, node: str, phase: str = "Bound", policy: str = "Delete") -> PersistentVolume:
    return PersistentVolume(
        ObjectMeta(name), MIB, ("ReadWriteOnce",), node, "c", "u", policy, phase=phase
    )


def test_local_deletes_and_local_retain_keeps() -> None:
    assert reclaim_policy("local") == "Delete"
    assert reclaim_policy("local-retain") == "Retain"


def test_a_node_removes_its_released_volumes_with_policy_delete_only() -> None:
    pvs = [
        _pv("pvc-1", "n1", "Released"),
        _pv("pvc-2", "n1", "Released", "Retain"),
        _pv("pvc-3", "n1"),
        _pv("pvc-4", "n2", "Released"),
    ]
    assert to_remove(pvs, "n1") == ["pinnace-pvc-1"]


def _claim(name: str = "data", used: int = -1, capacity: int = 0) -> PersistentVolumeClaim:
    return PersistentVolumeClaim(
        ObjectMeta(name),
        ("ReadWriteOnce",),
        64 * MIB,
        volume_name=f"pvc-{name}",
        node_name="n1",
        used_bytes=used,
        capacity_bytes=capacity,
    )


def test_a_volume_report_stores_changed_use_and_ends_done_deletions() -> None:
    claims = [_claim("data", 10 * MIB, 65 * MIB), _claim("same", 10 * MIB, 65 * MIB)]
    pvs = [_pv("pvc-gone", "n1", "Released"), _pv("pvc-stays", "n1", "Released")]
    uses = [
        VolumeUse("pinnace-pvc-data", 20 * MIB, 65 * MIB),
        VolumeUse("pinnace-pvc-same", 10 * MIB + 1000, 65 * MIB),  # below the step
        VolumeUse("pinnace-pvc-stays", 0, 65 * MIB),
    ]

    out = apply_volume_report("n1", uses, True, claims, pvs)

    assert [(c.meta.name, c.used_bytes) for c in out.claims] == [("data", 20 * MIB)]
    assert out.deleted == ("pvc-gone",)
    # A report whose listing failed says nothing about what is gone.
    assert apply_volume_report("n1", uses, False, claims, pvs).deleted == ()
    # Another node's report does not touch n1's claims.
    assert apply_volume_report("n2", uses, True, claims, pvs).claims == ()


def test_a_first_measure_or_a_new_size_is_always_stored() -> None:
    uses = [VolumeUse("pinnace-pvc-data", 0, 65 * MIB)]
    (first,) = apply_volume_report("n1", uses, True, [_claim()], []).claims
    assert (first.used_bytes, first.capacity_bytes) == (0, 65 * MIB)
    grown = [VolumeUse("pinnace-pvc-data", 0, 129 * MIB)]
    assert apply_volume_report("n1", grown, True, [first], []).claims


class _Lifecycle:
    def delete_pod(self, name: str, reason: str, message: str, namespace: str = "") -> bool:
        return True

    def forget_node(self, name: str) -> bool:
        return True


def test_deleting_a_claim_releases_its_volume_for_the_node_to_remove() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    state.put(_claim())
    state.put(_pv("pvc-data", "n1"))

    asyncio.run(delete_objects(state, _Lifecycle(), [("PersistentVolumeClaim", "data")], False))

    pv = state.get("PersistentVolume", "pvc-data")
    assert isinstance(pv, PersistentVolume) and pv.phase == "Released"
    assert to_remove([pv], "n1") == ["pinnace-pvc-data"]
    events = [e.message for e in state.objects("Event") if isinstance(e, Event)]
    assert any("node n1 removes its volume (reclaim policy Delete)" in m for m in events)


def test_a_claim_grows_keeps_its_measure_and_never_shrinks() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    state.put(_claim(used=5, capacity=65 * MIB))
    bigger = PersistentVolumeClaim(ObjectMeta("data"), ("ReadWriteOnce",), 128 * MIB)

    (applied,) = asyncio.run(apply_objects(state, [bigger], 10.0))

    stored = state.get("PersistentVolumeClaim", "data")
    assert isinstance(stored, PersistentVolumeClaim)
    assert applied.action == "configured"
    assert (stored.storage_bytes, stored.used_bytes, stored.node_name) == (128 * MIB, 5, "n1")
    with pytest.raises(AppError, match="cannot shrink from 128Mi to 64Mi; a claim can only grow"):
        asyncio.run(apply_objects(state, [replace(bigger, storage_bytes=64 * MIB)], 11.0))
    with pytest.raises(AppError, match="immutable after creation except"):
        other = replace(bigger, access_modes=("ReadWriteOncePod",))
        asyncio.run(apply_objects(state, [other], 12.0))


class _Disks:
    """ClaimDisks' removals, recorded."""

    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove(self, name: str) -> None:
        self.removed.append(name)

    def names(self) -> list[str]:
        return ["pinnace-pvc-gone-while-down"]

    def usage(self, name: str) -> tuple[int, int] | None:
        return None


def test_an_ordered_removal_waits_for_the_volume_to_be_free_then_takes_its_file() -> None:
    runtime = FakeRuntime("n1")
    labels = {LABEL_NODE: "n1", LABEL_VOLUME_KIND: "claim"}
    runtime.engine.volumes["pinnace-pvc-1"] = VolumeInfo("pinnace-pvc-1", labels)
    # a container still holds it
    runtime.engine.containers["c1"] = ContainerInfo("c1", "c1", "img", "running", dict(labels))
    runtime.engine.mounted["c1"] = {"pinnace-pvc-1"}
    disks, orders = _Disks(), ClaimOrders()
    orders.set_removals(["pinnace-pvc-1", "pinnace-pvc-gone-while-down"])

    async def rounds() -> None:
        await keep_once(runtime, disks, orders)  # type: ignore[arg-type]
        assert "pinnace-pvc-1" not in disks.removed and not orders.removed.is_set()
        del runtime.engine.containers["c1"]
        await keep_once(runtime, disks, orders)  # type: ignore[arg-type]

    asyncio.run(rounds())

    assert disks.removed.count("pinnace-pvc-1") == 1
    assert "pinnace-pvc-gone-while-down" in disks.removed
    assert orders.removed.is_set() and not runtime.engine.volumes


def test_a_growth_put_off_under_a_running_pod_is_said_once_per_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoOnlineResize(_Commands):
        def __call__(self, argv: Sequence[str]) -> str:
            if argv[0] == "resize2fs":
                self.calls.append(list(argv))
                raise DiskError("resize2fs: Permission denied to resize filesystem")
            return super().__call__(argv)

    run = NoOnlineResize()
    disks = ClaimDisks(tmp_path, run)
    disks.image("v1").write_bytes(b"")
    monkeypatch.setattr(disks, "usage", lambda name: (0, 32 * MIB))
    monkeypatch.setattr(disks, "_grow_unmounted", lambda name: False)  # a container holds it

    with caplog.at_level(logging.WARNING, logger="agent.claim_disks"):
        grown = [disks.grow("v1", 48 * MIB) for _ in range(3)] + [disks.grow("v1", 64 * MIB)]

    assert grown == [False] * 4
    assert disks.image("v1").stat().st_size == image_bytes(64 * MIB)  # the file grew at once
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and all("grows when its pods stop" in m for m in said)
    assert [c[0] for c in run.calls].count("resize2fs") == 4  # tried every round
