"""configMap and secret volumes on the node: the files the master sent, kept on a tmpfs.

The master resolves a pod's configMap/secret volumes into files and sends them with
the assignment (master/app/podvolumes.py); this edge writes them under
`<root>/<node>/<pod>/<volume>/` — by default /dev/shm/pinnace, a tmpfs, so a
Secret's values never touch the node's disk nor the agent's state dir — and the
container bind-mounts that directory read-only. Each set of assignments rewrites
what changed (each file atomically: written beside, then renamed), so a changed
ConfigMap or Secret reaches running containers within a heartbeat or two, as the
kubelet's do; directories of pods no longer assigned are removed. A pod's fsGroup
owns its files, group-readable, as the kubelet makes them. `plan_files`
decides (pure); `VolumeFiles.sync` writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.model import PodAssignment
from agent.volume_owner import owned_mode
from kernel.names import flat_pod_ref

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/dev/shm/pinnace"
FILE_SOURCES = ("configMap", "secret", "projected", "downwardAPI")


@dataclass(frozen=True, slots=True)
class WantedFile:
    pod: str
    volume: str
    path: str
    content: bytes
    mode: int
    # The pod's fsGroup: the file's group, and group-readable (agent/volume_owner.py).
    fs_group: int | None = None


def plan_files(assignments: Iterable[PodAssignment]) -> list[WantedFile]:
    """Every file the node's configMap/secret volumes must hold now."""
    return [
        WantedFile(
            a.name,
            v.name,
            f.path,
            f.content,
            f.mode if a.spec.fs_group is None else owned_mode(f.mode, False, read_only=True),
            a.spec.fs_group,
        )
        for a in assignments
        if not a.stop
        for v in a.spec.volumes
        if v.source in FILE_SOURCES
        for f in v.files
    ]


def volume_dir(root: str, node: str, pod: str, volume: str) -> str:
    return os.path.join(root, node, flat_pod_ref(pod), volume)


class VolumeFiles:
    def __init__(self, root: str, node: str) -> None:
        self._root = Path(root)
        self._node = node

    @property
    def root(self) -> str:
        return str(self._root)

    def sync(self, assignments: Iterable[PodAssignment]) -> None:
        assigned = list(assignments)
        base = self._root / self._node
        wanted = plan_files(assigned)
        keep: dict[Path, set[Path]] = {
            base / flat_pod_ref(a.name) / v.name: set()
            for a in assigned
            if not a.stop
            for v in a.spec.volumes
            if v.source in FILE_SOURCES
        }
        if not keep and not base.exists():
            return  # nothing to keep and nothing left over: touch no disk
        try:
            base.mkdir(parents=True, exist_ok=True)
            os.chmod(base, 0o700)
            for directory in keep:
                directory.mkdir(parents=True, exist_ok=True)
                os.chmod(directory, 0o755)
            for f in wanted:
                target = base / flat_pod_ref(f.pod) / f.volume / f.path
                keep[base / flat_pod_ref(f.pod) / f.volume].add(target)
                self._write(target, f.content, f.mode, f.fs_group)
            self._prune(base, keep)
        except OSError as e:
            log.warning("cannot write configMap/secret volumes under %s: %s", base, e)

    @staticmethod
    def _write(target: Path, content: bytes, mode: int, fs_group: int | None) -> None:
        try:
            st = target.stat()
            same = (
                target.read_bytes() == content
                and (st.st_mode & 0o777) == mode
                and fs_group in (None, st.st_gid)
            )
        except OSError:
            same = False
        if same:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(target.parent, 0o755)
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, content)
            if fs_group is not None:
                with contextlib.suppress(PermissionError):  # an agent that may not: as is
                    os.fchown(fd, -1, fs_group)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, target)

    @staticmethod
    def _prune(base: Path, keep: dict[Path, set[Path]]) -> None:
        pods = {d.parent for d in keep}
        for pod_dir in base.iterdir():
            if pod_dir not in pods:
                shutil.rmtree(pod_dir, ignore_errors=True)
                continue
            for vol_dir in pod_dir.iterdir():
                if vol_dir not in keep:
                    shutil.rmtree(vol_dir, ignore_errors=True)
                    continue
                for path in sorted(vol_dir.rglob("*"), reverse=True):
                    if path.is_file() and path not in keep[vol_dir]:
                        path.unlink(missing_ok=True)
