"""Which engine mount serves a volumeMount's subPath, and what a hostPath's type demands (pure).

Docker mounts part of a named volume (`VolumeOptions.Subpath`) only from Engine API 1.45
on; an older engine takes the field and drops it, mounting the whole volume -- the file
a pod writes through `subPath: logs` lands in the volume's root, without a word. So the
plan depends on the engine: from 1.45 the engine's own Subpath (it resolves the path
beneath the volume itself, safe against a symlink swapped in meanwhile); below it, a bind
of the subdirectory of the volume's own directory (`volume_directory`: the engine's
Mountpoint, or the directory a bind-backed volume -- a claim's loop-mounted filesystem, a
memory emptyDir's tmpfs -- stands for), which the engine can always bind because it is
a path of its own filesystem.

Both need the subdirectory to exist (the engine refuses a missing Subpath; Kubernetes
creates it), and only an agent that sees the engine's filesystem (it shares the
engine's mount namespace, agent/mountns.py) can make it and check it stays inside the
volume (agent/mount_paths.py). Where the agent cannot and the engine is older, there
is no way to mount what the user asked: the plan is a refusal naming the volume and
why, which becomes the container's CreateContainerError, never the whole volume.

hostPath types as the kubelet checks them: "" nothing; DirectoryOrCreate and
FileOrCreate make a missing directory or empty file; every type must find the kind of
thing it names, with the kubelet's sentence when it does not.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# The first Engine API that honours VolumeOptions.Subpath (Docker 26.0).
ENGINE_SUBPATH_API = (1, 45)

PathKind = Literal["missing", "directory", "file", "socket", "char", "block", "other"]


@dataclass(frozen=True, slots=True)
class EngineSubPath:
    """A volume mount with VolumeOptions.Subpath `sub_path` (already made, inside)."""

    sub_path: str


@dataclass(frozen=True, slots=True)
class BindSubDir:
    """A bind of `source`: the volume's directory joined with the subPath, resolved."""

    source: str


@dataclass(frozen=True, slots=True)
class MakeSubDir:
    """The agent must first make (or find) the subPath beneath `directory` and check it
    stays inside; then `then_engine` says which of the two mounts serves it."""

    directory: str
    then_engine: bool


@dataclass(frozen=True, slots=True)
class SubPathRefused:
    reason: str


SubPathPlan = EngineSubPath | MakeSubDir | SubPathRefused


def serve_made(plan: MakeSubDir, relative: str) -> EngineSubPath | BindSubDir:
    """The mount for a subPath the agent made and resolved to `relative` (symlinks
    inside the volume followed): the engine's Subpath where it has it (it resolves the
    path again itself, so nothing swapped in since can lead it out), else the bind."""
    if plan.then_engine:
        return EngineSubPath(relative)
    return BindSubDir(posixpath.normpath(posixpath.join(plan.directory, relative)))


def parse_api_version(version: str) -> tuple[int, int]:
    """ "1.41" -> (1, 41); anything unreadable is (0, 0): the oldest, the safe guess."""
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return 0, 0


def engine_has_subpath(api_version: str) -> bool:
    return parse_api_version(api_version) >= ENGINE_SUBPATH_API


def volume_directory(inspected: Mapping[str, Any]) -> str:
    """Where a Docker volume's files are on the engine's filesystem, from its inspect: the
    bound device of a `local` bind volume (its Mountpoint is mounted only while a
    container uses it), else the Mountpoint."""
    options = inspected.get("Options") or {}
    if options.get("type") == "none" and "bind" in str(options.get("o", "")).split(","):
        return str(options.get("device") or "")
    if options.get("type"):
        # A tmpfs (or other filesystem) the engine mounts only while a container uses it:
        # its Mountpoint is an empty directory the rest of the time.
        return ""
    return str(inspected.get("Mountpoint") or "")


def plan_sub_path(
    volume: str, sub_path: str, api_version: str, directory: str, agent_sees: bool
) -> SubPathPlan:
    """How the volume mount of pod volume `volume` (its directory `directory` on the
    engine's filesystem) serves `sub_path` on an engine speaking `api_version`, with an
    agent that sees the engine's filesystem or not."""
    engine = engine_has_subpath(api_version)
    if agent_sees and directory:
        return MakeSubDir(directory, then_engine=engine)
    if engine:
        # The engine mounts it if it exists; it cannot be made here (a missing one fails
        # with the engine's error, named by the caller).
        return EngineSubPath(sub_path)
    why = (
        "the agent does not see the engine's filesystem to bind the subdirectory itself "
        "(it runs in a container)"
        if directory
        else "the volume is a filesystem the engine mounts only for its containers"
    )
    return SubPathRefused(
        f'volume "{volume}": subPath "{sub_path}" cannot be mounted on this node: the '
        f"Docker engine speaks API {api_version or 'unknown'} (subPath of a volume needs "
        f"{ENGINE_SUBPATH_API[0]}.{ENGINE_SUBPATH_API[1]}, Docker 26) and {why}"
    )


def sub_path_escape(volume: str, sub_path: str) -> str:
    """The kubelet's refusal of a subPath that leads outside its volume."""
    return (
        f'volume "{volume}": subPath "{sub_path}" points outside the volume (through a '
        "symbolic link); refused, as the kubelet does"
    )


_NAMES: dict[str, str] = {
    "Directory": "a directory",
    "DirectoryOrCreate": "a directory",
    "File": "a file",
    "FileOrCreate": "a file",
    "Socket": "a socket file",
    "CharDevice": "a character device",
    "BlockDevice": "a block device",
}
_KINDS: dict[str, PathKind] = {
    "Directory": "directory",
    "DirectoryOrCreate": "directory",
    "File": "file",
    "FileOrCreate": "file",
    "Socket": "socket",
    "CharDevice": "char",
    "BlockDevice": "block",
}


@dataclass(frozen=True, slots=True)
class HostPathCheck:
    """What a hostPath needs before its bind: make a directory or an empty file, or
    nothing; `problem` (the kubelet's event text) refuses it."""

    create: Literal["", "directory", "file"] = ""
    problem: str = ""


def check_host_path(volume: str, path: str, type_: str, found: PathKind) -> HostPathCheck:
    """The kubelet's hostPath type check for what is at `path` now."""
    if type_ == "":
        return HostPathCheck()
    if found == "missing" and type_ == "DirectoryOrCreate":
        return HostPathCheck(create="directory")
    if found == "missing" and type_ == "FileOrCreate":
        return HostPathCheck(create="file")
    if found == _KINDS.get(type_):
        return HostPathCheck()
    what = _NAMES.get(type_, "of type " + type_)
    return HostPathCheck(
        problem=(
            f'MountVolume.SetUp failed for volume "{volume}" : hostPath type check failed: '
            f"{path} is not {what}"
        )
    )
