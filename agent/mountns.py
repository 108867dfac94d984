"""Whether a mount the agent makes is one the Docker engine will see.

A claim's loop-mounted filesystem (agent/claim_disks.py) and a memory emptyDir's tmpfs
(agent/memory_volumes.py) reach their pods as bind mounts the engine makes by path, in
its own mount namespace. An agent in a container has a mount namespace of its own, with
Docker's default private propagation: a mount it makes stays there, and the engine
would bind the empty directory beneath it -- the pod's data and the agent's view would
part. Not hypothetical: the compose demo's agents hold CAP_SYS_ADMIN (to enter their
pods' network namespaces, agent/nodeproxy/podroutes.py), so their mounts succeed.

The sign: a process between the agent and PID 1 in another mount namespace, or one
whose namespace the agent may not read (a container runtime's shim, with more
capabilities than the agent). An agent on the host, started by a shell, a test or a
service manager, has only same-namespace ancestors below PID 1, which itself is left
out: some machines' PID 1 holds capabilities even root's processes lack, so it cannot
be read. An agent in a container with a PID namespace of its own sees only its
container and is not told apart (such an agent gives its pods no routes either).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def mount_namespace_problem(own: str, ancestors: Sequence[str | None]) -> str:
    """Why mounts made in namespace `own` may not be seen by the engine ("" when they are,
    or when our own is unknown); `ancestors`: the mount namespaces of the processes
    between us and PID 1 (None: could not be read)."""
    if not own:
        return ""
    for theirs in ancestors:
        if theirs is None:
            return (
                "a process the agent descends from (a container runtime's) hides its mount "
                "namespace: the engine may not see what the agent mounts"
            )
        if theirs != own:
            return (
                "the agent runs in a mount namespace of its own (a container): the engine "
                "would not see what it mounts"
            )
    return ""


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def why_mounts_stay_here() -> str:
    """mount_namespace_problem for this process and its ancestors, read from /proc."""
    own = _namespace(os.getpid()) or ""
    ancestors: list[str | None] = []
    pid = os.getppid()
    while pid > 1 and len(ancestors) < 64:
        ancestors.append(_namespace(pid))
        pid = _parent(pid)
    return mount_namespace_problem(own, ancestors)
