"""Can the node proxy bind a Service's listener here? A test bind, and who holds the port.

HAProxy loads a config all or nothing: one listener it cannot bind (a process on the
node already listening on the port, on every address or on that one) fails the whole
start or reload, and the proxy would go on serving the old table for every Service.
So before HAProxy is given a config, each listener is bound once by the agent the way
HAProxy binds it (kernel/bindprobe.py, the master's load balancer asks the same): that
succeeds beside the proxy's own sockets -- and beside the proxies of other agents sharing
the machine -- and fails exactly where HAProxy would. A refused listener is left out of the config
and reported for its Service (agent/nodeproxy/proxy.py), naming the process in the
way when /proc shows it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from kernel.bindprobe import bind_error

_REASONS = {
    errno.EADDRINUSE: "PortInUse",
    errno.EADDRNOTAVAIL: "AddressNotAvailable",
    errno.EACCES: "PermissionDenied",
}


@dataclass(frozen=True, slots=True)
class BindFailure:
    address: str
    port: int
    reason: str
    # The OS's words and, when found, the process holding the port.
    detail: str

    @property
    def listener(self) -> tuple[str, int]:
        return (self.address, self.port)


def try_bind(address: str, port: int) -> BindFailure | None:
    """None when HAProxy could bind address:port now, else why not."""
    e = bind_error(address, port)
    if e is None:
        return None
    code = e.errno or 0
    words = os.strerror(code) if code else str(e)
    holder = listener_of(port) if code == errno.EADDRINUSE else ""
    detail = f"{words}; held by {holder}" if holder else words
    return BindFailure(address, port, _REASONS.get(code, "ListenFailed"), detail)


def listener_of(port: int) -> str:
    """`pid N (name)` of a process listening on TCP `port`, or "" if /proc does not say."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; the inode is field 9.
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return ""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
            if any(os.readlink(fd) in inodes for fd in fds):
                name = (proc / "comm").read_text().strip()
                return f"pid {proc.name} ({name})"
        except OSError:
            continue
    return ""
