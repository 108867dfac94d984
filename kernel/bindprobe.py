"""Could HAProxy bind address:port now? One test bind, made the way HAProxy binds.

Both HAProxies pinnace runs ask this before they are given a config: the master's load
balancer and each agent's node proxy. A listener HAProxy cannot bind fails the whole
reload (and, while the new process retries the bind for about a second, the serving one
pauses every listener), so a port another process holds is found here first. The probe
sets SO_REUSEADDR and SO_REUSEPORT as HAProxy does: it succeeds beside HAProxy's own
sockets and other HAProxies on the machine, and fails exactly where HAProxy would.
"""

from __future__ import annotations

import socket


def bind_error(address: str, port: int) -> OSError | None:
    """None when HAProxy could bind address:port now, else the error its bind would get."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind((address, port))
    except OSError as err:
        return err
    return None
