"""The service range made local to the node: one route, `ip route replace local CIDR dev lo`.

With it (Linux's "AnyIP"), every address of the range is this machine's own: the
node proxy can bind any cluster IP without configuring addresses one by one, and
a pod on a Docker bridge reaches it through its gateway (the packet is for the
host, so it is delivered to the proxy's socket). `replace` makes it idempotent:
several agents on one machine, or an agent restarting, set the same route again.
The route stays when the agent stops, as the proxy does (the data plane outlives
the agent); it needs root (CAP_NET_ADMIN), which the agent has as it drives Docker.
"""

from __future__ import annotations

import ipaddress
import subprocess


class RouteError(RuntimeError):
    """The range could not be made local: one sentence saying what to do."""


def local_route_command(cidr: str) -> list[str]:
    network = ipaddress.ip_network(cidr)
    family = "-6" if network.version == 6 else "-4"
    return ["ip", family, "route", "replace", "local", str(network), "dev", "lo"]


def make_local(cidr: str) -> None:
    """Route the whole service range to this machine; raises RouteError."""
    command = local_route_command(cidr)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RouteError(
            f"cannot make the service range {cidr} local ({' '.join(command)}: {e}); "
            "install iproute2, or start the agent with --no-node-proxy"
        ) from None
    if done.returncode != 0:
        raise RouteError(
            f"cannot make the service range {cidr} local ({' '.join(command)}: "
            f"{done.stderr.strip() or f'exit {done.returncode}'}); run the agent as root "
            "(CAP_NET_ADMIN), or start it with --no-node-proxy"
        )
