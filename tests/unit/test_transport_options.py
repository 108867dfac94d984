"""The gRPC options both ends of the node session start with: no HTTP/2 BDP probes.

Each probe is a ping the other side's gRPC threads must read and answer; with them on,
every message a node sends or receives cost the master a ping more
(tests/bench/ping_cost.py)."""

from __future__ import annotations

from kernel.limits import AGENT_CHANNEL_OPTIONS, MAX_MASTER_MESSAGE_BYTES
from master.server import MAX_MESSAGE_BYTES, server_options, session_keepalive


def test_the_master_sends_no_bdp_probes_and_keeps_its_session_keepalive() -> None:
    options = dict(server_options())

    assert options["grpc.http2.bdp_probe"] == 0
    assert options["grpc.max_receive_message_length"] == MAX_MESSAGE_BYTES
    assert options["grpc.max_send_message_length"] == MAX_MASTER_MESSAGE_BYTES
    assert options.items() >= dict(session_keepalive()).items()


def test_the_ping_interval_reaches_the_server_options() -> None:
    options = dict(server_options(4.0))

    assert options["grpc.keepalive_time_ms"] == 4000
    assert options["grpc.http2.bdp_probe"] == 0


def test_an_agent_channel_sends_no_bdp_probes() -> None:
    options = dict(AGENT_CHANNEL_OPTIONS)

    assert options["grpc.http2.bdp_probe"] == 0
    assert options["grpc.max_receive_message_length"] == MAX_MASTER_MESSAGE_BYTES


def test_each_option_is_given_once() -> None:
    names = [name for name, _ in server_options()]

    assert len(names) == len(set(names))


def test_the_answer_timeout_reaches_the_ping_timeout_and_the_link_keeps_its_own() -> None:
    options = dict(server_options(2.0, 1.5))

    assert options["grpc.keepalive_time_ms"] == 2000
    assert options["grpc.http2.ping_timeout_ms"] == 1500
    assert options["grpc.keepalive_timeout_ms"] == 2500  # TCP_USER_TIMEOUT, unchanged


def test_the_master_command_starts_with_the_servers_keepalive() -> None:
    from master.cli.main import build_parser
    from master.server import SESSION_PING_ANSWER_SECONDS, SESSION_PING_SECONDS

    args = build_parser().parse_args(["master"])

    assert args.session_ping_seconds == SESSION_PING_SECONDS
    assert args.session_ping_answer_seconds == SESSION_PING_ANSWER_SECONDS


def test_the_default_keepalive_finds_a_frozen_agent_within_5_s_with_a_pass_to_spare() -> None:
    # The next ping comes at most one interval after the death, its answer is overdue
    # after the answer timeout, the node is NotReady a session grace later (1 s,
    # master/controllers/lifecycle.py); the 5 s goal (issue 15) leaves room for a pass and
    # the master's loop being late (measured: 0.35 s at 5,000 hollow nodes).
    from master.controllers.lifecycle import NodeHealthSettings
    from master.server import SESSION_PING_ANSWER_SECONDS, SESSION_PING_SECONDS

    worst = SESSION_PING_SECONDS + SESSION_PING_ANSWER_SECONDS + NodeHealthSettings().session_grace

    assert worst <= 4.5
