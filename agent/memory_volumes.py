"""Memory emptyDirs (`medium: Memory`) that live as long as their pod, not their containers.

Kubernetes keeps a memory emptyDir for the pod's whole life: a crashed container's
replacement finds the files its predecessor left (vLLM's /dev/shm, a cache). A Docker
volume of the local driver with `type=tmpfs` does not: the engine mounts the tmpfs
when the first container using it starts and unmounts it when the last one stops, so
a container kill empties it. So the agent owns the tmpfs, as the kubelet does:

- `<root>/<volume>/`: a tmpfs the agent mounts, of the volume's sizeLimit (a write
  past it fails with ENOSPC), mode 0777 (writable by any user, as the kubelet makes
  an emptyDir), nodev and nosuid. The pod's Docker volume is a bind of that directory
  (local driver, `type=none,o=bind`, as claim volumes are), so the engine's own mounts
  come and go with containers while the tmpfs, and its data, stays.
- An agent restart adopts them: the mounts outlive the agent, and a container of the
  pod mounts its volume again through `ensure` (which mounts a tmpfs missing after a
  reboot: memory does not survive one, in Kubernetes neither).
- The pod gone: the volume collector (agent/volume_gc.py) removes the Docker volume,
  then `remove` unmounts the tmpfs and removes the directory; a directory left without
  its Docker volume (an agent stopped in between) is removed by the next round.

Where the agent cannot mount (not root, a container without CAP_SYS_ADMIN, or one
whose mounts the engine would not see: the compose demo's agents, agent/mountns.py),
`why_unavailable` says why, and each memory emptyDir is a
plain directory under `root`, by default on the node's /dev/shm (a tmpfs): its data is
in memory and kept for the pod's life as above, but its sizeLimit is not enforced (it
can grow to what /dev/shm holds). The agent says so once, as a warning event of its
node, and the README says it too.

`tmpfs_options` and `strays` decide (pure); MemoryVolumes runs the commands (blocking:
the runtime calls it from its worker threads).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from agent.mountns import why_mounts_stay_here
from agent.volume_owner import set_volume_ownership

log = logging.getLogger(__name__)

# On the node's /dev/shm: where the mounts go, and the memory itself where the agent
# cannot mount. Not under the configMap/secret root (agent/volume_files.py), whose
# per-node directories that root's owner prunes.
DEFAULT_ROOT = "/dev/shm/pinnace-memory"
# The mount probe's directory (a prefix: each probe's is its own, see why_unavailable).
_PROBE = ".probe"

Run = Callable[[Sequence[str]], str]


class MemoryVolumeError(Exception):
    """A mount or unmount of a memory volume failed; the message says which and why."""


def tmpfs_options(size_bytes: int, fs_group: int | None = None) -> str:
    """mount(8)'s options for a memory emptyDir's own tmpfs (0: the kernel's default size,
    half the node's memory; the master always sends a size). With the pod's fsGroup the
    root is that group's and setgid (agent/volume_owner.py)."""
    size = f"size={size_bytes}," if size_bytes > 0 else ""
    owner = "mode=0777" if fs_group is None else f"gid={fs_group},mode=2777"
    return f"{size}{owner},nodev,nosuid"


def strays(directories: Iterable[str], volumes: Iterable[str]) -> list[str]:
    """The memory volumes' directories whose Docker volume is gone (the pod's data with
    nobody left to mount it)."""
    return sorted(n for n in set(directories) - set(volumes) if not n.startswith(_PROBE))


def existing_ancestor(path: Path) -> Path:
    """`path` if it is a directory, else the nearest of its parents that is."""
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def _run(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MemoryVolumeError(f"{argv[0]}: {exc}") from exc
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise MemoryVolumeError(
            f"{' '.join(argv)}: {why[-1] if why else f'exit {done.returncode}'}"
        )
    return done.stdout


class MemoryVolumes:
    """The node's memory emptyDirs under `root` (one directory per Docker volume name);
    `mounts`: each is a tmpfs of its own (False: a plain directory, see the docstring)."""

    def __init__(self, root: str | Path, mounts: bool = True, run: Run = _run) -> None:
        self.root = Path(root)
        self.mounts = mounts
        self._run = run
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        return self.root / name

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(_PROBE)
        )

    def why_unavailable(self) -> str:
        """Why this agent cannot mount a tmpfs of its own ("" when it can): tried once, on a
        tiny tmpfs, since a root agent in a container may still lack the capability."""
        if os.geteuid() != 0:
            return "the agent is not root (mounting a tmpfs needs it)"
        elsewhere = why_mounts_stay_here()
        if elsewhere:
            return elsewhere
        if shutil.which("mount") is None or shutil.which("umount") is None:
            return "mount or umount not found (util-linux)"
        # In a directory of its own in the nearest folder that exists: the probe makes no
        # folder of the root's (a node without memory emptyDirs keeps none) and never
        # removes one another agent sharing the root's parent is making.
        probe: Path | None = None
        try:
            probe = Path(tempfile.mkdtemp(prefix=f"{_PROBE}-", dir=existing_ancestor(self.root)))
            self._run(["mount", "-t", "tmpfs", "-o", tmpfs_options(4096), "tmpfs", str(probe)])
            self._run(["umount", str(probe)])
        except (MemoryVolumeError, OSError) as exc:
            return f"cannot mount a tmpfs ({exc})"
        finally:
            if probe is not None and probe.is_dir() and not os.path.ismount(probe):
                probe.rmdir()
        return ""

    def ensure(self, name: str, size_bytes: int, fs_group: int | None = None) -> str:
        """The directory of the memory volume `name`, made (and mounted) as needed."""
        with self._lock:
            directory = self.path(name)
            fresh = not directory.exists()
            directory.mkdir(parents=True, exist_ok=True)
            if not self.mounts:
                if fresh:
                    os.chmod(directory, 0o777)
                    if fs_group is not None:
                        set_volume_ownership(str(directory), fs_group)
            elif not os.path.ismount(directory):
                options = tmpfs_options(size_bytes, fs_group)
                self._run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)])
                log.info("mounted memory volume %s (%s)", name, options)
            return str(directory)

    def remove(self, name: str) -> None:
        """Unmount (its data goes with the tmpfs) and remove the directory; a missing one is
        fine. Call only once no container holds the pod's Docker volume."""
        with self._lock:
            directory = self.path(name)
            if os.path.ismount(directory):
                self._run(["umount", str(directory)])
            shutil.rmtree(directory, ignore_errors=True)
