"""Which addresses a new HAProxy config would newly listen on, and whether another process
holds one of them.

Why check before reloading: a reload whose new listener cannot bind does not just fail. The
re-executed HAProxy asks the serving worker to pause its listeners (SIGTTOU) while it retries
the bind for about a second, then resumes them (SIGTTIN): for that second every Service's
port refuses connections. A port another process holds is therefore found here, by binding
it the way HAProxy would (kernel/bindprobe.py: only a foreign holder counts), and the
reload is not attempted at all. HAProxy refusing the reload stays the fallback for the
race where the port is taken between this check and the reload.
"""

from __future__ import annotations

from kernel.bindprobe import bind_error
from master.lb.model import LbState
from master.lb.slots import format_address


def listeners(state: LbState, default_address: str) -> set[tuple[str, int]]:
    """Every (address, port) the config rendered for `state` binds (see render.py)."""
    found: set[tuple[str, int]] = set()
    for backend in state.backends:
        if backend.frontend and backend.listen_port:
            for address in backend.bind_addresses or (default_address,):
                found.add((address, backend.listen_port))
    ingress = state.ingress
    if ingress is not None:
        if ingress.http_port:
            found.add((ingress.bind_address, ingress.http_port))
        if ingress.https_port and ingress.certs:
            found.add((ingress.bind_address, ingress.https_port))
    return found


def added_listeners(before: LbState, after: LbState, default_address: str) -> list[tuple[str, int]]:
    """The listeners `after` binds that the running `before` does not, sorted."""
    return sorted(listeners(after, default_address) - listeners(before, default_address))


def held_elsewhere(wanted: list[tuple[str, int]]) -> list[str]:
    """For each of `wanted` that HAProxy could not bind now, why (empty: all free)."""
    problems = []
    for address, port in wanted:
        err = bind_error(address, port)
        if err is not None:
            shown = format_address(address, port)
            problems.append(f"cannot listen on {shown}: another process holds it ({err.strerror})")
    return problems
