"""Memory emptyDirs the agent owns: a tmpfs of the sizeLimit mounted once per volume,
kept while its pod lives, unmounted when its Docker volume goes; a plain directory where
the agent cannot mount. Commands are recorded, not run (the real mounts are in
tests/integration/test_volumes.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.memory_volumes import MemoryVolumes, strays, tmpfs_options
from agent.runtime.fake_runtime import FakeRuntime
from agent.runtime.port import ContainerConfig, Mount
from agent.volume_gc import run_volume_gc
from kernel.clock import FakeClock


class Commands:
    def __init__(self) -> None:
        self.argv: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        self.argv.append(list(argv))
        return ""


def test_the_tmpfs_is_of_the_size_limit_writable_by_any_user_without_devices() -> None:
    assert tmpfs_options(8 << 20) == "size=8388608,mode=0777,nodev,nosuid"
    assert tmpfs_options(0) == "mode=0777,nodev,nosuid"


def test_a_directory_without_its_docker_volume_is_a_stray() -> None:
    assert strays(["a", "b", ".probe"], ["b", "c"]) == ["a"]


def test_ensure_mounts_a_tmpfs_of_the_volume_and_remove_unmounts_nothing_left(
    tmp_path: Path,
) -> None:
    run = Commands()
    memory = MemoryVolumes(tmp_path / "n1", run=run)

    path = memory.ensure("pinnace-n1-web-shm", 1 << 20)

    assert path == str(tmp_path / "n1" / "pinnace-n1-web-shm")
    assert run.argv == [["mount", "-t", "tmpfs", "-o", tmpfs_options(1 << 20), "tmpfs", path]]
    assert memory.names() == ["pinnace-n1-web-shm"]
    memory.remove("pinnace-n1-web-shm")  # (a fake mount: nothing to unmount)
    assert memory.names() == []
    memory.remove("pinnace-n1-web-shm")  # gone already: fine


def test_without_mounts_the_volume_is_a_directory_open_to_all_and_its_files_stay(
    tmp_path: Path,
) -> None:
    run = Commands()
    memory = MemoryVolumes(tmp_path / "n1", mounts=False, run=run)

    path = Path(memory.ensure("v", 1 << 20))
    (path / "f").write_text("kept")
    memory.ensure("v", 1 << 20)  # the next container of the pod

    assert run.argv == []
    assert (path.stat().st_mode & 0o777, (path / "f").read_text()) == (0o777, "kept")
    memory.remove("v")
    assert not path.exists()


def _memory_mount(name: str) -> Mount:
    labels = {"pinnace.node": "n1", "pinnace.pod": "web", "pinnace.volume-kind": "emptyDir"}
    return Mount("volume", "/dev/shm", name, tmpfs_bytes=1 << 20, labels=labels)


def test_the_collector_removes_the_tmpfs_with_the_volume_and_a_stray_after_two_rounds(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        runtime = FakeRuntime("n1")
        runtime.engine.present_images.add("img")
        memory = MemoryVolumes(tmp_path, mounts=False)
        info = await runtime.create_and_start(
            ContainerConfig(
                "c",
                "img",
                {"pinnace.node": "n1", "pinnace.pod": "web"},
                mounts=(_memory_mount("vol"),),
            )
        )
        memory.ensure("vol", 1 << 20)
        memory.ensure("stray", 1 << 20)  # its Docker volume never made / already gone
        task = asyncio.create_task(run_volume_gc(runtime, clock, memory, interval=10, grace=30))

        async def rounds(n: int) -> None:
            for _ in range(n):
                while not clock.sleepers:
                    await asyncio.sleep(0)
                clock.advance(10)
            while not clock.sleepers:
                await asyncio.sleep(0)

        await rounds(0)
        assert memory.names() == ["stray", "vol"]  # one round: a stray may be a pod starting
        await rounds(1)
        assert memory.names() == ["vol"]  # the pod still has its container
        await runtime.remove(info.id)
        await rounds(4)  # the grace
        assert memory.names() == []
        assert await runtime.list_volumes() == []
        task.cancel()

    asyncio.run(scenario())


def test_the_mount_probe_leaves_no_directory_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node without memory emptyDirs keeps no folder of them: the probe at the agent's
    start made the root and its parent (/dev/shm/pinnace-memory/NODE) and removed only
    the root, leaving /dev/shm/pinnace-memory after every agent."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("agent.memory_volumes.why_mounts_stay_here", lambda: "")
    monkeypatch.setattr("shutil.which", lambda name: f"/bin/{name}")
    run = Commands()
    memory = MemoryVolumes(tmp_path / "pinnace-memory" / "n1", run=run)

    assert memory.why_unavailable() == ""

    assert [argv[0] for argv in run.argv] == ["mount", "umount"]
    assert list(tmp_path.iterdir()) == []


def test_a_probe_in_the_root_is_no_volume(tmp_path: Path) -> None:
    (tmp_path / "n1" / ".probe-x1y2").mkdir(parents=True)
    (tmp_path / "n1" / "v").mkdir()

    assert MemoryVolumes(tmp_path / "n1").names() == ["v"]
    assert strays([".probe-x1y2", "v"], []) == ["v"]
