"""A pod's fsGroup owning its volumes, as the kubelet's SetVolumeOwnership makes it.

With spec.securityContext.fsGroup set, the kubelet gives every file and directory
of an emptyDir or claim (and a configMap's or secret's files) that group, adds group
read (and write, unless read-only) permission, and makes directories group-searchable
and setgid, so files made later inherit the group; the containers' processes get the
group as a supplementary one (agent/security.py). A process running as any user in
that group can then use the volume.

When, as Kubernetes' fsGroupChangePolicy says: `Always` (its default, also when the
field is absent) walks the whole volume every time it is mounted for a pod, so files
a process elsewhere made with another group or mode are put right again, at the cost
of a walk of a large volume at each start; `OnRootMismatch` walks only when the
volume's root does not show the group and bits yet (the root is done last, so it
says whether a walk finished). `owned_mode`, `root_matches` and `needs_walk` decide
(pure); `set_volume_ownership` walks.
"""

from __future__ import annotations

import contextlib
import os
import stat

ALWAYS = "Always"
ON_ROOT_MISMATCH = "OnRootMismatch"

RW_MASK = 0o660
RO_MASK = 0o440
DIR_BITS = 0o110 | stat.S_ISGID


def owned_mode(mode: int, is_dir: bool, read_only: bool = False) -> int:
    """The permission bits a file or directory gets under an fsGroup."""
    mask = RO_MASK if read_only else RW_MASK
    if is_dir:
        mask |= DIR_BITS
    return stat.S_IMODE(mode) | mask


def root_matches(mode: int, gid: int, fs_group: int, read_only: bool = False) -> bool:
    """Whether a volume's root already shows the fsGroup's ownership (nothing to walk)."""
    return gid == fs_group and owned_mode(mode, True, read_only) == stat.S_IMODE(mode)


def needs_walk(policy: str, mode: int, gid: int, fs_group: int, read_only: bool = False) -> bool:
    """Whether a mount under `policy` walks the volume whose root has `mode` and `gid`
    (any policy but OnRootMismatch is Always, as the kubelet reads it)."""
    return policy != ON_ROOT_MISMATCH or not root_matches(mode, gid, fs_group, read_only)


def set_volume_ownership(
    root: str, fs_group: int, read_only: bool = False, policy: str = ALWAYS
) -> None:
    """Give the tree at `root` the group and bits, as `policy` says (`needs_walk`). A
    file that vanishes meanwhile is skipped."""
    st = os.stat(root)
    if not needs_walk(policy, st.st_mode, st.st_gid, fs_group, read_only):
        return
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            _own(os.path.join(directory, name), fs_group, read_only)
    _own(root, fs_group, read_only)  # last: the root's bits say the walk is done


def _own(path: str, fs_group: int, read_only: bool) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.lchown(path, -1, fs_group)
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(path, owned_mode(st.st_mode, stat.S_ISDIR(st.st_mode), read_only))
