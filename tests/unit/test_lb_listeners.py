"""What a new config would newly listen on, and the check that another process holds a port
(a real socket on 127.0.0.1: a failed HAProxy reload pauses every listener, so this check
keeps the driver from trying one)."""

from __future__ import annotations

import socket

from master.lb.listeners import added_listeners, held_elsewhere, listeners
from master.lb.model import BackendState, CertRef, IngressFrontend, LbState


def _backend(service: str, port: int, *addresses: str, frontend: bool = True) -> BackendState:
    return BackendState(service, "", port, (), bind_addresses=addresses, frontend=frontend)


def test_listeners_follow_the_rendered_binds() -> None:
    state = LbState(
        backends=(
            _backend("a", 8080),
            _backend("b", 80, "127.0.0.2", "127.0.0.3"),
            _backend("routes-only", 0, frontend=False),
        ),
        # No certificate: no HTTPS frontend is rendered, so 8443 is not bound.
        ingress=IngressFrontend("0.0.0.0", 8000, 8443),
    )
    assert listeners(state, "127.0.0.1") == {
        ("127.0.0.1", 8080),
        ("127.0.0.2", 80),
        ("127.0.0.3", 80),
        ("0.0.0.0", 8000),
    }
    with_cert = LbState(ingress=IngressFrontend("0.0.0.0", 0, 8443, certs=(CertRef("x", "d"),)))
    assert listeners(with_cert, "127.0.0.1") == {("0.0.0.0", 8443)}


def test_only_listeners_the_running_config_lacks_are_added() -> None:
    before = LbState(backends=(_backend("a", 8080),))
    after = LbState(backends=(_backend("a", 8080), _backend("b", 9090), _backend("c", 7070)))
    assert added_listeners(before, after, "127.0.0.1") == [
        ("127.0.0.1", 7070),
        ("127.0.0.1", 9090),
    ]
    assert added_listeners(after, before, "127.0.0.1") == []


def test_a_port_another_process_listens_on_is_found_and_a_free_one_is_not() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            free = spare.getsockname()[1]
        problems = held_elsewhere([("127.0.0.1", free), ("127.0.0.1", busy)])
    assert len(problems) == 1
    assert f"127.0.0.1:{busy}" in problems[0]
    assert "another process holds it" in problems[0]
    assert held_elsewhere([("127.0.0.1", busy)]) == []
