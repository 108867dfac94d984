"""Adopting a running HAProxy: its live servers and the saved slot table, merged (pure)."""

from __future__ import annotations

from pathlib import Path

from master.lb.adopt import (
    UNKNOWN_POD,
    LiveServer,
    admin_mode,
    adopt_state,
    decode_state,
    encode_state,
    parse_show_servers_state,
)
from master.lb.model import BackendState, LbState, Slot
from master.lb.process import SocketDir

# Captured from HAProxy 2.6.12 after `set server be_a/s1 state drain`, s0 re-addressed and
# made ready, s2 left as configured.
_HEADER = (
    "be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
    "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
    "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr "
    "srv_agent_addr srv_agent_port"
)
SHOW_SERVERS_STATE = f"""1
# {_HEADER}
3 be_a 1 s0 127.0.0.1 2 4 1 1 1 1 0 2 6 0 0 0 - 11 - 0 0 - - 0
3 be_a 2 s1 127.0.0.1 0 12 1 1 1 8 2 0 6 0 0 0 - 9 - 0 0 - - 0
3 be_a 3 s2 0.0.0.0 0 5 1 1 5 8 2 0 6 0 0 0 - 0 - 0 0 - - 0

"""

SAVED = LbState(
    backends=(
        BackendState(
            service="a",
            port_name="",
            listen_port=8080,
            slots=(
                Slot("pod-x", "127.0.0.1", 11, "ready"),
                Slot("pod-y", "127.0.0.1", 9, "drain"),
                Slot(),
            ),
            mode="http",
            bind_addresses=("127.0.0.1", "127.0.0.2"),
        ),
    )
)


def test_show_servers_state_gives_address_port_and_admin_mode() -> None:
    servers = parse_show_servers_state(SHOW_SERVERS_STATE)

    assert servers == (
        LiveServer("be_a", "s0", "127.0.0.1", 11, "ready"),
        LiveServer("be_a", "s1", "127.0.0.1", 9, "drain"),
        LiveServer("be_a", "s2", "0.0.0.0", 0, "maint"),
    )


def test_admin_bits_config_maintenance_alone_is_not_maintenance() -> None:
    assert admin_mode(0) == "ready"
    assert admin_mode(0x04) == "ready"  # "disabled" in the config, since set ready
    assert admin_mode(0x01 | 0x04) == "maint"
    assert admin_mode(0x08) == "drain"
    assert admin_mode(0x01 | 0x08) == "maint"


def test_the_saved_table_round_trips_and_garbage_reads_as_nothing() -> None:
    assert decode_state(encode_state(SAVED, "f1")) == (SAVED, "f1")
    assert decode_state(b"{not json") is None
    assert decode_state(b'{"version": 2}') is None
    assert decode_state(b'{"version": 1, "settings": "f", "backends": [{"service": 1}]}') is None


def test_live_and_saved_agree_the_saved_table_is_adopted() -> None:
    live = parse_show_servers_state(SHOW_SERVERS_STATE)

    assert adopt_state(SAVED, True, live) == SAVED


def test_live_wins_where_they_differ_and_the_pod_becomes_unknown() -> None:
    live = list(parse_show_servers_state(SHOW_SERVERS_STATE))
    live[0] = LiveServer("be_a", "s0", "127.0.0.1", 12, "ready")
    live[1] = LiveServer("be_a", "s1", "127.0.0.1", 9, "maint")

    slots = adopt_state(SAVED, True, live).backends[0].slots

    assert slots[0] == Slot(UNKNOWN_POD, "127.0.0.1", 12, "ready")
    assert slots[1] == Slot("pod-y", "127.0.0.1", 9, "maint")
    assert slots[2] == Slot()


def test_anything_a_reload_must_settle_gives_an_empty_table() -> None:
    live = parse_show_servers_state(SHOW_SERVERS_STATE)
    other_backend = [LiveServer("be_b", s.server, s.address, s.port, s.mode) for s in live]

    assert adopt_state(None, False, live) == LbState()  # nothing saved
    assert adopt_state(SAVED, False, live) == LbState()  # other settings
    assert adopt_state(SAVED, True, other_backend) == LbState()
    assert adopt_state(SAVED, True, live[:2]) == LbState()  # other slot count


def test_long_socket_paths_go_through_a_directory_descriptor(tmp_path: Path) -> None:
    short = SocketDir(Path("/run/pinnace/lb"))
    assert short.address("master.sock") == "/run/pinnace/lb/master.sock"
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    sockets = SocketDir(deep)
    try:
        address = sockets.address("master.sock")
        assert address.startswith("/proc/self/fd/") and address.endswith("/master.sock")
        assert len(address) < 107
    finally:
        sockets.close()


def test_an_ingress_frontend_round_trips_with_its_redirected_hosts() -> None:
    from master.lb.model import CertRef, HostRoutes, IngressFrontend, Route

    frontend = IngressFrontend(
        "127.0.0.1",
        8880,
        8443,
        hosts=(HostRoutes("a.test", (Route("/", False, ("a", "ingress:80"), "web"),)),),
        certs=(CertRef("tls.pem", "abc", ("a.test",)),),
        redirect_hosts=("a.test",),
    )
    state = LbState(ingress=frontend)

    assert decode_state(encode_state(state, "f1")) == (state, "f1")
