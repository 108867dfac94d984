"""Is a process alive, and is it the one we started? (/proc, for detached HAProxy processes.)

The master's load balancer and each agent's node proxy run HAProxy detached, so that traffic
outlives pinnace's own processes, and find it again by a pid file. A pid file can outlive its
process and the PID be reused, so a PID counts only while it is alive (a zombie is gone) and,
for runs_config, while its command line names the config file it was started with.
HAProxy rewrites its pid file at every reload: read_pid_file waits that moment out.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# A kernel thread's flag in /proc/PID/stat (include/linux/sched.h): it has no command line.
PF_KTHREAD = 0x00200000


def pid_alive(pid: int) -> bool:
    """True while `pid` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat_fields(stat)[0] != "Z"


def stat_fields(stat: str) -> list[str]:
    """/proc/PID/stat's fields from the state letter on (the command name before it is in
    parentheses and may hold spaces or parentheses itself)."""
    return stat.rsplit(")", 1)[1].split()


def names_config(cmdline: bytes, stat: str, config: Path) -> bool:
    """Whether a live process with this command line and stat runs `config`.

    An empty command line is a process in the middle of execve (the kernel has swapped in the
    new memory but not yet copied its arguments): HAProxy re-executes itself on every reload,
    so that moment recurs and must not read as "HAProxy exited". A kernel thread, whose
    command line is always empty, is never ours.
    """
    if cmdline == b"":
        fields = stat_fields(stat)
        return fields[0] not in ("Z", "X") and not int(fields[6]) & PF_KTHREAD
    return str(config).encode() in cmdline.split(b"\0")


def runs_config(pid: int, config: Path) -> bool:
    """True while `pid` is alive, running `config` and in our network namespace (a recycled
    PID is someone else, and so is a process of another container that shares our PID
    namespace: agents in containers with `pid: host` keep their configs at the same path)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return names_config(cmdline, stat, config) and same_network_namespace(pid)


def same_network_namespace(pid: int) -> bool:
    """Whether `pid` shares this process's network namespace (True when /proc cannot say)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return True


def any_runs_config(config: Path) -> bool:
    """Whether some process in our network namespace has `config` in its command line (an
    HAProxy master or one of its workers: they keep theirs while the master re-executes).
    Named, not assumed: any process on the machine may be mid-execve with an empty one."""
    wanted = str(config).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            named = wanted in (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if named and same_network_namespace(int(entry.name)):
            return True
    return False


def pid_in(text: str) -> int | None:
    """The PID a pid file's text names (its first word), or None when it names none yet."""
    words = text.split()
    return int(words[0]) if words and words[0].isdigit() else None


def read_pid_file(pidfile: Path, config: Path, wait: float = 2.0) -> int | None:
    """The PID of the HAProxy master that `pidfile` names, while it runs `config`; else None.

    HAProxy's master removes and rewrites its pid file each time it re-executes itself, at
    every reload: for that moment the file is missing or empty (134 of 22,000 reads during
    30 reloads in a loop here) while the same master, and its workers, still run. Read as
    "no HAProxy", a master or agent starting then would start a second HAProxy beside the
    reloading one and leave that one serving the old config, never stopped. So while the
    file names no PID but a process runs `config`, it is read again, for up to `wait` s.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            pid = pid_in(pidfile.read_text())
        except FileNotFoundError:
            pid = None
        except OSError:
            return None
        if pid is not None:
            return pid if runs_config(pid, config) else None
        if time.monotonic() >= deadline or not any_runs_config(config):
            return None
        time.sleep(0.01)
