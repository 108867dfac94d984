"""The filesystem side of subPath and hostPath mounts: make what Kubernetes makes, safely.

A subPath is made beneath its volume's directory as the kubelet makes it: missing
directories get the volume root's mode (an emptyDir's 0777 stays writable by any user; a
setgid fsGroup root passes its group on), and a path that leads out of the volume through
a symbolic link -- one a pod planted in its own volume, `logs -> /etc` -- is refused
rather than followed onto the node. Symlinks that stay inside are followed, as there.
Each component is opened with O_NOFOLLOW beneath the previous one, so a link swapped in
while the walk goes is caught, not followed. (The engine binds by path afterwards: on an
engine without Subpath a link swapped in between this walk and the bind, by a container
already running with the volume, is a window the kubelet closes by binding
/proc/self/fd, which an engine in another process cannot use. Engines with Subpath
resolve it themselves and have no such window.)

Runs only where the agent sees the engine's filesystem (agent/sub_paths.py decides).
"""

from __future__ import annotations

import errno
import os
import stat

from agent.sub_paths import PathKind


class SubPathEscape(Exception):
    """The subPath leads outside its volume."""


def make_sub_path(directory: str, sub_path: str) -> str:
    """The subPath's path relative to `directory`, symlinks inside resolved, made when
    missing. SubPathEscape when it leads outside; OSError as the filesystem says."""
    base = os.path.realpath(directory)
    target = os.path.realpath(os.path.join(base, sub_path))
    if target != base and not target.startswith(base.rstrip("/") + "/"):
        raise SubPathEscape(sub_path)
    relative = os.path.relpath(target, base)
    if relative == ".":
        return relative
    mode = stat.S_IMODE(os.stat(base).st_mode)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        parts = relative.split("/")
        for i, part in enumerate(parts):
            try:
                child = _open_beneath(fd, part)
            except FileNotFoundError:
                os.mkdir(part, mode, dir_fd=fd)
                child = _open_beneath(fd, part)
                # mkdir's mode passes through the umask: the root's bits, as they are.
                os.fchmod(child, mode)
            kind = os.fstat(child).st_mode
            os.close(fd)
            fd = child
            if stat.S_ISDIR(kind):
                continue
            if i < len(parts) - 1 or not stat.S_ISREG(kind):
                raise NotADirectoryError(f"{'/'.join(parts[: i + 1])} is not a directory")
    finally:
        os.close(fd)
    return relative


def _open_beneath(fd: int, name: str) -> int:
    """`name` in the directory `fd`, never through a symlink (one swapped in since the
    path was resolved is an escape attempt)."""
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise SubPathEscape(name) from exc
        raise


def path_kind(path: str) -> PathKind:
    """What is at `path` (symlinks followed, as the kubelet's type check does)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "char"
    if stat.S_ISBLK(mode):
        return "block"
    return "other"


def make_host_path(path: str, create: str) -> None:
    """hostPath DirectoryOrCreate: the directory and its parents, 0755; FileOrCreate: an
    empty file, 0644, in a parent that must exist (the kubelet makes no parents for it)."""
    if create == "directory":
        os.makedirs(path, 0o755, exist_ok=True)
    elif create == "file":
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))
