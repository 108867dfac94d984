"""Claim volumes of the size they ask for: a file of that size formatted ext4, loop-mounted.

Docker's local driver has no size limit on a plain named volume (overlay or ext4
data roots have no per-volume quota), which is local-path-provisioner#345's
complaint: a 1Gi claim fills the node's disk. XFS project quotas would need the
data root on XFS mounted with `prjquota`, and ext4 project quotas a remount with
`prjquota` — neither is how Debian installs a machine. A loop-mounted file works
on any filesystem, with nothing but util-linux and e2fsprogs (both in every Debian
install), so the agent (root) does this:

- `<root>/<volume>.img`: a file of the request plus ext4's own room, allocated
  whole (`fallocate`: the claim's space is the claim's, so claims can never
  overcommit the node's disk and turn a full host disk into I/O errors inside a
  claim), formatted ext4 with fast commits and no reserved blocks (`mkfs_commands`);
  made under a temporary name and renamed, so a half-made file is never adopted.
- `<root>/<volume>/`: where the agent mounts it, through a loop device with direct
  I/O (`losetup --direct-io=on`: the data is cached once, by the claim's own
  filesystem, not a second time for the backing file). The claim's Docker volume
  is a bind of that directory (local driver, `type=none,o=bind`), so containers,
  subPath and Docker's copy of the image's files into an empty volume work as with
  any named volume, and a write past the size fails with ENOSPC.
- Restart: the mounts outlive the agent; after a reboot `adopt` (at start) and
  `ensure` (before each container of the claim) mount the file again (a loop
  device still attached to the file is reused).
- Growing: a larger request grows the file and `resize2fs` grows the mounted
  filesystem online; where the kernel refuses (it needs CAP_SYS_RESOURCE), the
  filesystem grows unmounted the next time no container holds it. Nothing here
  ever shrinks a filesystem.
- Removal: unmount, detach the loop devices found by the file's path (loop devices
  are shared by everything on the machine: only the file's own), remove it.

Decisions (`image_bytes`, `shortfall`, `mkfs_commands`, `loops_of`, `mounts_of`) are pure;
ClaimDisks runs the commands (blocking: the runtime calls it from its worker threads).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.mountns import why_mounts_stay_here
from kernel.claimfiles import claim_file_bytes

log = logging.getLogger(__name__)

MIB = 1 << 20
DEFAULT_ROOT = "/var/lib/pinnace/claims"
TOOLS = ("mount", "umount", "losetup", "mkfs.ext4", "resize2fs", "e2fsck")

Run = Callable[[Sequence[str]], str]


class DiskError(Exception):
    """A command on a claim's file failed; the message says which and why."""


def image_bytes(request: int) -> int:
    """The first size of a claim's file (kernel/claimfiles.py: the master counts the same);
    `shortfall` tops it up."""
    return claim_file_bytes(request)


def shortfall(capacity: int, request: int) -> int:
    """Bytes to add to the file so the filesystem holds `request` (0: it does), whole MiB
    plus 1% for the metadata the added space itself needs."""
    if capacity >= request:
        return 0
    missing = request - capacity
    return -(-(missing + missing // 100 + MIB) // MIB) * MIB


def loops_of(losetup_j_output: str) -> list[str]:
    """The loop devices `losetup -j FILE` lists (`/dev/loop3: [2049]:131 (/path)`)."""
    return [line.split(":", 1)[0] for line in losetup_j_output.splitlines() if ":" in line]


def mounts_of(proc_mounts: str, devices: list[str]) -> int:
    """How many mounts of `devices` /proc/mounts lists: the agent's own, plus one for
    each Docker volume mount of the claim a container holds."""
    return sum(line.split(" ", 1)[0] in devices for line in proc_mounts.splitlines())


def mkfs_commands(path: str) -> list[list[str]]:
    """How to format a claim's file, best first (each later one for an older e2fsprogs).

    - `fast_commit` (e2fsprogs 1.46, kernel 5.10): an fsync journals only what changed
      in a small fast-commit block instead of a full jbd2 commit. A claim's fsync costs
      two journals' commits (its own, then the host's for the backing file, through the
      loop device's flush); this takes the claim's own down to a few blocks. Durability
      is the same (fsync still returns after the flush; fast commits are replayed from
      the journal, checksummed). Measured in tests/bench/claim_fs.py: claim fsync
      latency 0.57 -> 0.36 ms. A kernel without it mounts the filesystem as before
      (a compatible feature) and commits in full.
    - `assume_storage_prezeroed` (1.47): the file reads as zeros, so no inode tables to
      zero in the background (ext4lazyinit's writes would compete with the first pod's).
    - no reserved blocks (`-m 0`): the claim's size is all the pod's.
    """
    base = ["mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096"]
    return [
        [*base, "-O", "fast_commit", "-E", "nodiscard,assume_storage_prezeroed=1", path],
        [*base, "-O", "fast_commit", "-E", "nodiscard", path],
        [*base, "-E", "nodiscard", path],
    ]


def _allocate(path: Path, size: int) -> None:
    """The file at `size` bytes, every byte allocated (ENOSPC now rather than later)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def _run(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiskError(f"{argv[0]}: {exc}") from exc
    # e2fsck's 1: "errors corrected" (e.g. the journal of a filesystem unmounted just now).
    if done.returncode != 0 and not (argv[0] == "e2fsck" and done.returncode == 1):
        why = (done.stderr or done.stdout).strip().splitlines()
        raise DiskError(f"{' '.join(argv)}: {why[-1] if why else f'exit {done.returncode}'}")
    return done.stdout


def why_unavailable(root: str) -> str:
    """Why claim sizes cannot be enforced on this machine ("" when they can)."""
    if os.geteuid() != 0:
        return "the agent is not root (loop devices need it)"
    elsewhere = why_mounts_stay_here()
    if elsewhere:
        return elsewhere
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found (util-linux, e2fsprogs)"
    if not os.path.exists("/dev/loop-control"):
        return "/dev/loop-control is missing (no loop device support)"
    return ""


class ClaimDisks:
    def __init__(self, root: str | Path, run: Run = _run) -> None:
        self.root = Path(root)
        self._run = run
        # One change at a time: two pods of a claim may start together.
        self._lock = threading.RLock()
        # Claim volume -> the request whose growth waits for its pods to stop (said once).
        self._put_off: dict[str, int] = {}

    def image(self, name: str) -> Path:
        return self.root / f"{name}.img"

    def mountpoint(self, name: str) -> Path:
        return self.root / name

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name.removesuffix(".img") for p in self.root.glob("*.img"))

    def ensure(self, name: str, request: int) -> str:
        """The mounted directory of the claim volume `name`, made, mounted and grown to hold
        `request` bytes as needed."""
        with self._lock:
            return self._ensure_locked(name, request)

    def _ensure_locked(self, name: str, request: int) -> str:
        image, mnt = self.image(name), self.mountpoint(name)
        fresh = not image.exists()
        if fresh:
            self.root.mkdir(parents=True, exist_ok=True)
            making = image.with_suffix(".making")
            making.unlink(missing_ok=True)
            try:
                _allocate(making, image_bytes(request))
            except OSError as exc:
                making.unlink(missing_ok=True)
                raise DiskError(f"cannot make the claim's file of {request} bytes: {exc}") from exc
            self._mkfs(making)
            making.rename(image)
        self._mount(image, mnt)
        if fresh:
            # An empty root lets Docker copy the image's files (and owner) into the volume.
            lost = mnt / "lost+found"
            if lost.is_dir() and not any(lost.iterdir()):
                lost.rmdir()
        self.grow(name, request)
        return str(mnt)

    def _mkfs(self, path: Path) -> None:
        attempts = mkfs_commands(str(path))
        for argv in attempts[:-1]:
            try:
                self._run(argv)
                return
            except DiskError as exc:  # an older e2fsprogs: the next attempt asks for less
                log.info("%s; trying without its newer options", exc)
        self._run(attempts[-1])

    def _loops(self, image: Path) -> list[str]:
        return loops_of(self._run(["losetup", "-j", str(image)]))

    def _mount(self, image: Path, mnt: Path) -> None:
        if os.path.ismount(mnt):
            return
        mnt.mkdir(parents=True, exist_ok=True)
        attached = self._loops(image)
        loop = (
            attached[0]
            if attached
            else self._run(["losetup", "--find", "--show", "--direct-io=on", str(image)]).strip()
        )
        try:
            self._run(["mount", "-t", "ext4", "-o", "nodev,nosuid", loop, str(mnt)])
        except DiskError:
            if not attached:
                self._run(["losetup", "-d", loop])
            raise
        log.info("mounted claim file %s on %s (%s)", image, mnt, loop)

    def usage(self, name: str) -> tuple[int, int] | None:
        """(used, capacity) bytes of a mounted claim filesystem; None when not mounted."""
        mnt = self.mountpoint(name)
        if not os.path.ismount(mnt):
            return None
        st = os.statvfs(mnt)
        return (st.f_blocks - st.f_bfree) * st.f_frsize, st.f_blocks * st.f_frsize

    def free_bytes(self) -> int:
        """Bytes new claim files can still take on the claim dir's disk (measured at the
        nearest folder that exists: the node's own is made with its first claim)."""
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize

    def grow(self, name: str, request: int) -> bool:
        """Grow a mounted claim filesystem to hold `request` bytes; False when it already does."""
        with self._lock:
            return self._grow_locked(name, request)

    def _grow_locked(self, name: str, request: int) -> bool:
        image = self.image(name)
        # The file's size follows from the request alone, so a growth that cannot be
        # done now (see below) does not grow the file again at the next try.
        for target in (image_bytes, None):
            measured = self.usage(name)
            if measured is None or not shortfall(measured[1], request):
                return target is None
            size = image.stat().st_size
            want = target(request) if target else size + shortfall(measured[1], request)
            if want > size:
                try:
                    _allocate(image, want)
                except OSError as exc:
                    raise DiskError(f"cannot grow the claim's file to {want} bytes: {exc}") from exc
            try:
                for loop in self._loops(image):
                    self._run(["losetup", "-c", loop])
                    self._run(["resize2fs", loop])
            except DiskError as exc:
                # Online growth needs CAP_SYS_RESOURCE (some sandboxes drop it): grow it
                # unmounted instead, which is safe only when no container holds it.
                if not self._grow_unmounted(name):
                    # Tried again every round while the pod runs: said once per size.
                    if self._put_off.get(name) != request:
                        log.warning("claim volume %s grows when its pods stop (%s)", name, exc)
                    self._put_off[name] = request
                    return False
            log.info("grew claim file %s to %d bytes", image, max(want, size))
        return True

    def _grow_unmounted(self, name: str) -> bool:
        image, mnt = self.image(name), self.mountpoint(name)
        loops = self._loops(image)
        if mounts_of(Path("/proc/mounts").read_text(), loops) > 1:
            return False  # a container's volume holds it too: later
        self._run(["umount", str(mnt)])
        for loop in loops:
            self._run(["losetup", "-d", loop])
        try:
            self._run(["e2fsck", "-f", "-p", str(image)])
            self._run(["resize2fs", str(image)])
        finally:
            self._mount(image, mnt)
        return True

    def adopt(self) -> list[str]:
        """Mount every claim file left unmounted (after a reboot); the names mounted."""
        with self._lock:
            return self._adopt_locked()

    def _adopt_locked(self) -> list[str]:
        mounted = []
        for name in self.names():
            if not os.path.ismount(self.mountpoint(name)):
                try:
                    self._mount(self.image(name), self.mountpoint(name))
                    mounted.append(name)
                except DiskError as exc:
                    log.warning("cannot mount claim file of %s: %s", name, exc)
        return mounted

    def remove(self, name: str) -> None:
        """Unmount the claim's filesystem, detach its loop devices, remove file and directory."""
        with self._lock:
            return self._remove_locked(name)

    def _remove_locked(self, name: str) -> None:
        image, mnt = self.image(name), self.mountpoint(name)
        if os.path.ismount(mnt):
            self._run(["umount", str(mnt)])
        if image.exists():
            for loop in self._loops(image):
                self._run(["losetup", "-d", loop])
            image.unlink()
        if mnt.is_dir():
            mnt.rmdir()
