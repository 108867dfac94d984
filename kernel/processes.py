"""Is a process alive, and is it the one we started? (/proc, for detached HAProxy processes.)

The master's load balancer and each agent's node proxy run HAProxy detached, so that traffic
outlives pinnace's own processes, and find it again by a pid file. A pid file can outlive its
process and the PID be reused, so a PID counts only while it is alive (a zombie is gone) and,
for runs_config, while its command line names the config file it was started with.
"""

from __future__ import annotations

import os
from pathlib import Path


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
    # The state letter follows the command name in parentheses, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def runs_config(pid: int, config: Path) -> bool:
    """True while `pid` is alive and running `config` (a recycled PID is someone else)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(config).encode() in cmdline
