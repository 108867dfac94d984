"""The master's --data-dir: one master at a time, and private to it.

Two masters on one data directory would each believe their own memory and
overwrite each other's writes (an acknowledged scale to 7 ending as 2), and the
second would rewrite the admin's pinnace.conf. So a master holds an exclusive
advisory lock (flock) on `master.lock` for its whole life, taken before it
reads or writes anything else there. The lock dies with the process (even on
kill -9), so a crash never leaves a stale lock; the file itself stays and
says who held it last: the pid and the address it listens on, which is what a
second master prints when it is refused.

The directory holds the cluster's objects (env values may be passwords), the
CA key and the admin credentials, so it is 0700 and its store files 0600;
looser modes left by an older pinnace are tightened at start. Modes are only
ever tightened: a file made read-only on purpose stays read-only (and the
store then refuses it with a sentence rather than failing every write).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path

from master.store.port import StoreError

LOCK_NAME = "master.lock"
DIR_MODE = 0o700
FILE_MODE = 0o600


class DataDirLock:
    """The exclusive lock on a data directory; see the module docstring."""

    def __init__(self, path: Path, fd: int) -> None:
        self._path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path, listen: str) -> DataDirLock:
        """Lock `data_dir` (created 0700 if missing) or raise StoreError naming the holder."""
        prepare_data_dir(data_dir)
        path = data_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as e:
            raise StoreError(f"cannot open the lock file {path}: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreError(
                f"the data directory {data_dir} is in use by another master ({holder}); "
                f"stop that master first, or give this one another --data-dir"
            ) from None
        except OSError as e:
            os.close(fd)
            raise StoreError(f"cannot lock {path}: {e.strerror or e}") from e
        lock = cls(path, fd)
        lock.advertise(listen)
        return lock

    def advertise(self, listen: str) -> None:
        """Record who holds the lock (rewritten in place: the lock is on this inode)."""
        if self._fd is None:
            return
        data = f"pid {os.getpid()}, listening on {listen}\n".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


def prepare_data_dir(data_dir: Path) -> None:
    """Create `data_dir` 0700, or tighten an existing one and its store files."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        tighten(data_dir, DIR_MODE)
        for child in data_dir.iterdir():
            if child.name.startswith("pinnace.db") or child.name == LOCK_NAME:
                tighten(child, FILE_MODE)
    except OSError as e:
        raise StoreError(f"cannot prepare the data directory {data_dir}: {e.strerror or e}") from e


def tighten(path: Path, mode: int) -> None:
    """Drop every permission bit `mode` does not allow (never adds one)."""
    st = path.stat()
    current = stat.S_IMODE(st.st_mode)
    if current & ~mode:
        os.chmod(path, current & mode)
