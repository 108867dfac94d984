"""Which mount serves a subPath on which engine, and the kubelet's hostPath type check."""

from __future__ import annotations

import pytest

from agent.sub_paths import (
    BindSubDir,
    EngineSubPath,
    HostPathCheck,
    MakeSubDir,
    SubPathRefused,
    check_host_path,
    engine_has_subpath,
    parse_api_version,
    plan_sub_path,
    serve_made,
    volume_directory,
)

VOLUME_DIR = "/var/lib/docker/volumes/pinnace-n1-web-scratch/_data"


def test_api_versions_are_compared_as_numbers_and_unreadable_ones_count_as_old() -> None:
    assert parse_api_version("1.41") == (1, 41)
    assert parse_api_version("1.45") == (1, 45)
    assert not engine_has_subpath("1.41")
    assert not engine_has_subpath("1.9")
    assert engine_has_subpath("1.45")
    assert engine_has_subpath("1.100")
    assert engine_has_subpath("2.0")
    assert not engine_has_subpath("")
    assert not engine_has_subpath("garbage")


@pytest.mark.parametrize("api", ["1.41", "1.45", "1.47"])
def test_an_agent_that_sees_the_volume_makes_the_subdirectory_first(api: str) -> None:
    plan = plan_sub_path("scratch", "logs", api, VOLUME_DIR, agent_sees=True)
    assert plan == MakeSubDir(VOLUME_DIR, then_engine=engine_has_subpath(api))


def test_an_old_engine_gets_a_bind_of_the_made_subdirectory() -> None:
    plan = plan_sub_path("scratch", "logs", "1.41", VOLUME_DIR, agent_sees=True)
    assert isinstance(plan, MakeSubDir)
    assert serve_made(plan, "logs/app") == BindSubDir(f"{VOLUME_DIR}/logs/app")


def test_a_new_engine_resolves_the_made_subdirectory_itself() -> None:
    plan = plan_sub_path("scratch", "logs", "1.45", VOLUME_DIR, agent_sees=True)
    assert isinstance(plan, MakeSubDir)
    # the path as the agent resolved it (a symlink inside the volume followed)
    assert serve_made(plan, "real/logs") == EngineSubPath("real/logs")


def test_an_agent_in_a_container_leaves_the_subpath_to_a_new_engine() -> None:
    assert plan_sub_path("scratch", "logs", "1.45", VOLUME_DIR, agent_sees=False) == (
        EngineSubPath("logs")
    )


def test_an_agent_in_a_container_on_an_old_engine_refuses_naming_volume_and_why() -> None:
    plan = plan_sub_path("scratch", "logs", "1.41", VOLUME_DIR, agent_sees=False)
    assert isinstance(plan, SubPathRefused)
    assert 'volume "scratch": subPath "logs" cannot be mounted' in plan.reason
    assert "API 1.41" in plan.reason and "1.45" in plan.reason
    assert "runs in a container" in plan.reason


def test_an_engine_tmpfs_volume_on_an_old_engine_is_refused_not_mounted_whole() -> None:
    directory = volume_directory({"Mountpoint": VOLUME_DIR, "Options": {"type": "tmpfs"}})
    assert directory == ""
    plan = plan_sub_path("fast", "a", "1.41", directory, agent_sees=True)
    assert isinstance(plan, SubPathRefused)
    assert "mounts only for its containers" in plan.reason
    assert plan_sub_path("fast", "a", "1.45", directory, agent_sees=True) == EngineSubPath("a")


def test_a_volume_directory_is_the_bound_device_of_a_bind_volume_else_its_mountpoint() -> None:
    claim = {
        "Mountpoint": "/var/lib/docker/volumes/pinnace-pvc-1/_data",
        "Options": {"type": "none", "o": "bind", "device": "/var/lib/pinnace/claims/n1/pvc-1"},
    }
    assert volume_directory(claim) == "/var/lib/pinnace/claims/n1/pvc-1"
    assert volume_directory({"Mountpoint": VOLUME_DIR, "Options": None}) == VOLUME_DIR
    assert volume_directory({"Mountpoint": VOLUME_DIR}) == VOLUME_DIR


@pytest.mark.parametrize(
    ("type_", "found", "expected"),
    [
        ("", "missing", HostPathCheck()),
        ("", "file", HostPathCheck()),
        ("DirectoryOrCreate", "missing", HostPathCheck(create="directory")),
        ("DirectoryOrCreate", "directory", HostPathCheck()),
        ("FileOrCreate", "missing", HostPathCheck(create="file")),
        ("FileOrCreate", "file", HostPathCheck()),
        ("Directory", "directory", HostPathCheck()),
        ("File", "file", HostPathCheck()),
        ("Socket", "socket", HostPathCheck()),
        ("CharDevice", "char", HostPathCheck()),
        ("BlockDevice", "block", HostPathCheck()),
    ],
)
def test_host_path_types_pass_or_create(type_: str, found: str, expected: HostPathCheck) -> None:
    assert check_host_path("data", "/srv/x", type_, found) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("type_", "found", "what"),
    [
        ("File", "directory", "a file"),
        ("File", "missing", "a file"),
        ("FileOrCreate", "directory", "a file"),
        ("Directory", "file", "a directory"),
        ("Directory", "missing", "a directory"),
        ("DirectoryOrCreate", "file", "a directory"),
        ("Socket", "file", "a socket file"),
        ("CharDevice", "block", "a character device"),
        ("BlockDevice", "missing", "a block device"),
    ],
)
def test_host_path_type_mismatches_fail_with_the_kubelets_sentence(
    type_: str, found: str, what: str
) -> None:
    check = check_host_path("conf", "/srv/x", type_, found)  # type: ignore[arg-type]
    assert check.problem == (
        f'MountVolume.SetUp failed for volume "conf" : hostPath type check failed: '
        f"/srv/x is not {what}"
    )
    assert check.create == ""
