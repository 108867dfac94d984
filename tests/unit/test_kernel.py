"""The shared kernel: one quantity parser (Kubernetes' rounding), names, atomic writes."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.nodeproxy.process import ProxyPaths
from agent.nodeproxy.process import find_running as proxy_find_running
from kernel.bootstrap import ANONYMOUS_SEED, anonymous_secret
from kernel.clock import FakeClock
from kernel.files import write_atomic
from kernel.names import JOIN_TOKEN, is_node_name
from kernel.processes import names_config, read_pid_file, stat_fields
from kernel.quantity import QuantityError, parse_quantity_cpu, parse_quantity_memory
from master.lb.process import LbPaths
from master.lb.process import find_running as lb_find_running


@pytest.mark.parametrize(
    ("text", "millis"),
    [("0.0005", 1), ("0.0015", 2), ("0.001", 1), ("500u", 1), ("1n", 1), ("2", 2000)],
)
def test_cpu_rounds_up_to_the_next_millicore_as_kubernetes_does(text: str, millis: int) -> None:
    # Kubernetes' MilliValue rounds up: a request of 0.0005 CPU asks for 1m, never for 0m.
    assert parse_quantity_cpu(text) == millis


def test_memory_rounds_up_to_the_next_byte() -> None:
    assert parse_quantity_memory("1500m") == 2
    assert parse_quantity_memory("0.5") == 1


@pytest.mark.parametrize("text", ["1e3m", "1Kib", "1.2.3", "--1", "1 m"])
def test_only_kubernetes_grammar_is_a_quantity(text: str) -> None:
    # One suffix or one exponent, not both (Kubernetes refuses "1e3m" too).
    with pytest.raises(QuantityError, match="must be a quantity"):
        parse_quantity_cpu(text)


def test_a_non_scalar_is_named_by_kind() -> None:
    with pytest.raises(QuantityError, match="got a dict"):
        parse_quantity_memory({"a": 1})


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("node-1", True),
        ("a.b-c.d", True),
        ("x" * 253, True),
        ("x" * 254, False),
        ("Node1", False),
        ("-node", False),
        ("node-", False),
        ("a..b", False),
        ("", False),
        ("node 1", False),
        ("node\n", False),
    ],
)
def test_node_names_are_dns_1123_subdomains(name: str, ok: bool) -> None:
    assert is_node_name(name) is ok


def test_the_join_token_form() -> None:
    token = "pinnace1.abcdefgh." + "a" * 24 + "." + "B_-" + "c" * 40
    match = JOIN_TOKEN.fullmatch(token)
    assert match is not None and match.group(1) == "abcdefgh"
    assert JOIN_TOKEN.fullmatch(token[:-1]) is None
    assert JOIN_TOKEN.fullmatch("pinnace2" + token[8:]) is None


def test_the_anonymous_secret_is_derived_from_the_public_seed() -> None:
    assert ANONYMOUS_SEED.startswith(b"pinnace anonymous bootstrap identity v1")
    assert anonymous_secret() == anonymous_secret() > 0
    assert anonymous_secret().bit_length() <= 256


def test_atomic_write_sets_the_mode_from_the_first_byte_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "key.pem"
    write_atomic(target, b"one")
    write_atomic(target, b"two", 0o640)

    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["key.pem"]


def test_a_failed_atomic_write_leaves_no_trace(tmp_path: Path) -> None:
    target = tmp_path / "config"
    write_atomic(target, b"old")
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores the mode: make the rename fail instead
            (tmp_path / ".config.tmp").mkdir()
            (tmp_path / ".config.tmp" / "x").write_text("")
        with pytest.raises(OSError):
            write_atomic(target, b"new")
    finally:
        os.chmod(tmp_path, 0o700)
    assert target.read_bytes() == b"old"


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock()
    wall, mono = clock.now(), clock.monotonic()
    clock.advance(2.5)
    assert (clock.now() - wall, clock.monotonic() - mono) == (2.5, 2.5)


# -- is a detached HAProxy still the one we started? ---------------------------------------

STAT = "4242 (haproxy) {state} 1 4242 4242 0 -1 {flags} 10 0 0 0 3 1 0 0 20 0 1 0"
CONFIG = Path("/data/lb/haproxy.cfg")


def test_a_process_mid_execve_still_runs_its_config() -> None:
    # HAProxy re-executes itself at every reload; for that moment its command line reads
    # empty. Taking it for "exited" failed a reload in CI.
    assert names_config(b"", STAT.format(state="R", flags=0x400100), CONFIG)


def test_a_kernel_thread_or_a_zombie_never_runs_our_config() -> None:
    assert not names_config(b"", STAT.format(state="S", flags=0x208040), CONFIG)
    assert not names_config(b"", STAT.format(state="Z", flags=0x400104), CONFIG)


def test_the_command_line_must_name_the_config_itself() -> None:
    stat = STAT.format(state="S", flags=0x400100)
    argv = b"/usr/sbin/haproxy\0-W\0-f\0/data/lb/haproxy.cfg\0"
    assert names_config(argv, stat, CONFIG)
    assert not names_config(argv, stat, Path("/other/lb/haproxy.cfg"))
    assert not names_config(b"/usr/sbin/haproxy\0-f\0/data/lb/haproxy.cfg.new\0", stat, CONFIG)


def test_a_command_name_with_parentheses_does_not_shift_the_fields() -> None:
    stat = "7 (a) b (c) S 1 7 7 0 -1 4194560 10 0 0 0 3 1 0 0 20 0 1 0"
    assert stat_fields(stat)[0] == "S" and int(stat_fields(stat)[6]) == 4194560


# -- an HAProxy pid file mid-reload ------------------------------------------------------


@contextlib.contextmanager
def running_config(config: Path) -> Iterator[int]:
    """A live process whose command line names `config`, as an HAProxy worker's does."""
    config.write_text("")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-f", config])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_pid_file_being_rewritten_by_a_reload_names_the_master_once_written(
    tmp_path: Path,
) -> None:
    # HAProxy removes, then rewrites, its pid file at every reload while its processes run
    # on: read as "none runs", a master starting then started a second HAProxy beside it.
    lb, proxy = LbPaths(tmp_path / "lb"), ProxyPaths(tmp_path / "nodeproxy")
    cases: list[tuple[Path, Path, Callable[[], int | None]]] = [
        (lb.pidfile, lb.config, lambda: lb_find_running(lb)),
        (proxy.pidfile, proxy.config, lambda: proxy_find_running(proxy)),
    ]
    for pidfile, config, find in cases:
        pidfile.parent.mkdir()
        with running_config(config) as pid:
            for emptied in (True, False):  # emptied, then removed
                if emptied:
                    pidfile.write_text("")
                else:
                    pidfile.unlink()
                writer = threading.Timer(0.2, pidfile.write_text, [f"{pid}\n"])
                writer.start()
                try:
                    assert find() == pid
                finally:
                    writer.cancel()


def test_no_pid_file_and_nothing_running_its_config_is_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first start (no HAProxy yet), or one that died: nothing to wait for.
    monkeypatch.setattr("time.sleep", lambda _: pytest.fail("waited for a pid file"))
    pidfile, config = tmp_path / "haproxy.pid", tmp_path / "haproxy.cfg"
    assert read_pid_file(pidfile, config, wait=30) is None
    pidfile.write_text("")
    assert read_pid_file(pidfile, config, wait=30) is None
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but runs no such config
    assert read_pid_file(pidfile, config, wait=30) is None
