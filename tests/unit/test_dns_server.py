"""The agent's supervision of its dnsmasq (agent/dns/server.py), with a stand-in binary.

The stand-in reads the config it is given, writes its pid where `pid-file` says (as
dnsmasq does once its socket is bound) and waits for SIGTERM, on which it removes its pid
file a moment before it ends (as dnsmasq does); SIGHUP it counts in `<pid file>.hup`
(dnsmasq re-reads its servers file); with FAKE_FAIL set it
dies at once with dnsmasq's words. 127.0.0.1 is already an address of the machine, so
no route is added. The real dnsmasq is exercised by tests/integration/test_cluster_dns.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from agent.dns.render import DnsName
from agent.dns.server import DnsServer, DnsStartError

FAKE = """import os, signal, sys, time
conf = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--conf-file="))
lines = [line.split("=", 1) for line in open(conf).read().splitlines() if "=" in line]
if os.environ.get("FAKE_FAIL"):
    print("dnsmasq: failed to create listening socket for 127.0.0.1: Address in use",
          file=sys.stderr)
    sys.exit(2)
pid_file = dict(lines)["pid-file"]
open(pid_file, "w").write(str(os.getpid()))
def bye(*_):
    os.unlink(pid_file)  # as dnsmasq: the pid file goes first, the socket a moment later
    time.sleep(0.3)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
def hup(*_):  # dnsmasq re-reads its servers file: count it beside the pid file
    with open(pid_file + ".hup", "a") as f:
        f.write("hup\\n")
signal.signal(signal.SIGHUP, hup)
while True:
    time.sleep(1)
"""


@pytest.fixture
def fake_dnsmasq(tmp_path: Path) -> str:
    script = tmp_path / "fake-dnsmasq"
    script.write_text(f"#!{sys.executable}\n{FAKE}")
    script.chmod(0o755)
    return str(script)


def _server(tmp_path: Path, binary: str) -> DnsServer:
    return DnsServer("n1", "127.0.0.1", "cluster.local", tmp_path / "dns", binary, backoff=0.01)


def _pid(tmp_path: Path) -> int:
    try:
        return int((tmp_path / "dns" / "n1" / "dnsmasq.pid").read_text() or 0)
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


async def _until(what: str, check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_it_starts_is_restarted_when_it_dies_and_stops_when_asked(
    tmp_path: Path, fake_dnsmasq: str
) -> None:
    async def scenario() -> None:
        server = _server(tmp_path, fake_dnsmasq)
        await server.start()
        supervisor = asyncio.create_task(server.run())
        try:
            first = _pid(tmp_path)
            assert _alive(first)
            server.update([DnsName("default", "web", "", ("10.96.0.5",))])
            names = tmp_path / "dns" / "n1" / "hosts" / "cluster"
            assert "10.96.0.5 web.default.svc.cluster.local" in names.read_text()

            os.kill(first, signal.SIGKILL)
            await _until("a new dnsmasq", lambda: _pid(tmp_path) not in (0, first))
            second = _pid(tmp_path)
        finally:
            await server.stop()
            await asyncio.wait_for(supervisor, 5)

        assert not _alive(second)
        assert "web.default.svc.cluster.local" in names.read_text()  # kept for the next agent

    _run(scenario)


def test_a_stop_while_a_dead_dnsmasq_waits_to_be_restarted_leaves_none_running(
    tmp_path: Path, fake_dnsmasq: str
) -> None:
    # The supervisor restarted it after its backoff even when the agent had stopped
    # meanwhile (and a stop during the launch missed the new process): a dnsmasq outlived
    # its agent (a unit run at load 35-40 found the restarted one alive after stop).
    async def scenario() -> None:
        server = DnsServer(
            "n1", "127.0.0.1", "cluster.local", tmp_path / "dns", fake_dnsmasq, backoff=0.5
        )
        await server.start()
        supervisor = asyncio.create_task(server.run())
        first = _pid(tmp_path)
        proc = server._proc
        assert proc is not None
        os.kill(first, signal.SIGKILL)
        await _until("the supervisor saw it die", lambda: proc.returncode is not None)

        await server.stop()  # within the 0.5 s backoff
        await asyncio.wait_for(supervisor, 5)

        assert _pid(tmp_path) in (0, first)  # no dnsmasq was started after the stop
        assert server._proc is proc

    _run(scenario)


def test_a_new_agent_replaces_the_dnsmasq_a_killed_one_left(
    tmp_path: Path, fake_dnsmasq: str
) -> None:
    async def scenario() -> None:
        left = _server(tmp_path, fake_dnsmasq)
        fresh = _server(tmp_path, fake_dnsmasq)
        try:
            await left.start()
            orphan = _pid(tmp_path)

            await fresh.start()

            # Gone before the new one started (else the new one would find its port taken).
            assert not _alive(orphan)
            assert _alive(_pid(tmp_path)) and _pid(tmp_path) != orphan
        finally:
            await fresh.stop()
            await left.stop()

    _run(scenario)


def test_a_dnsmasq_that_cannot_start_is_one_sentence_with_its_reason(
    tmp_path: Path, fake_dnsmasq: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "1")

    async def scenario() -> None:
        with pytest.raises(
            DnsStartError, match=r"did not start on 127\.0\.0\.1:\d+: .*Address in use"
        ):
            await _server(tmp_path, fake_dnsmasq).start()
        with pytest.raises(DnsStartError, match="cannot run /nonexistent/dnsmasq"):
            await _server(tmp_path, "/nonexistent/dnsmasq").start()

    _run(scenario)


def test_an_unusable_directory_is_one_sentence_naming_the_flag(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a directory")
    server = DnsServer("n1", "127.0.0.1", "cluster.local", tmp_path / "taken")

    with pytest.raises(DnsStartError, match="give --dns-dir a directory"):
        asyncio.run(server.start())


def _srv_pids(tmp_path: Path) -> dict[int, int]:
    """port -> pid of every SRV dnsmasq whose pid file is there."""
    found = {}
    for pid_file in (tmp_path / "dns" / "n1").glob("srv-*.pid"):
        found[int(pid_file.stem.split("-")[1])] = int(pid_file.read_text() or 0)
    return found


def test_new_srv_records_go_to_a_new_srv_dnsmasq_and_the_node_one_is_only_told(
    tmp_path: Path, fake_dnsmasq: str
) -> None:
    from agent.dns.render import SrvRecord

    record = SrvRecord("default", "web", "http", "tcp", "web.default.svc", 80)
    node_dir = tmp_path / "dns" / "n1"

    async def scenario() -> None:
        server = _server(tmp_path, fake_dnsmasq)
        await server.start()
        supervisor = asyncio.create_task(server.run())
        try:
            node = _pid(tmp_path)
            ((first_port, first),) = _srv_pids(tmp_path).items()
            servers = node_dir / "servers.conf"
            assert servers.read_text() == f"server=/svc.cluster.local/127.0.0.1#{first_port}\n"

            server.update([], [record])
            await _until("a new SRV dnsmasq", lambda: server.srv_swaps == 1)
            # The node's dnsmasq is the same process, told once to re-read its servers file.
            assert _pid(tmp_path) == node
            hups = node_dir / "dnsmasq.pid.hup"
            # The stand-in's open() makes the file a moment before its write: wait for the line.
            await _until("the node's dnsmasq told", lambda: hups.exists() and hups.read_text())
            assert hups.read_text() == "hup\n"
            await _until("the old SRV dnsmasq retired", lambda: not _alive(first))
            ((port, second),) = _srv_pids(tmp_path).items()
            assert port != first_port
            assert servers.read_text() == f"server=/svc.cluster.local/127.0.0.1#{port}\n"
            conf = (node_dir / f"srv-{port}.conf").read_text()
            assert "srv-host=_http._tcp.web.default.svc.cluster.local," in conf

            server.update([], [record])  # the same records: nothing to do
            # Any swap the update set going has ended (none should have begun).
            await asyncio.wait_for(server.settled(), 10)
            assert (server.srv_swaps, _srv_pids(tmp_path)) == (1, {port: second})

            os.kill(second, signal.SIGKILL)  # an SRV dnsmasq that dies is replaced
            await _until(
                "another SRV dnsmasq", lambda: set(_srv_pids(tmp_path).values()) - {second}
            )
        finally:
            await server.stop()
            await asyncio.wait_for(supervisor, 5)

        assert not _alive(node) and not _alive(second)
        assert not list(node_dir.glob("srv-*.pid"))
        assert (
            f"servers-file={node_dir / 'servers.conf'}" in (node_dir / "dnsmasq.conf").read_text()
        )

    _run(scenario)


def test_a_stop_while_an_srv_dnsmasq_is_being_launched_leaves_none_running(
    tmp_path: Path, fake_dnsmasq: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a busy machine the launch (fork, exec, then the pipes connected on the loop) can
    # still be under way when the agent stops: the process exists and has written its pid
    # file, its launch has not returned. Cancelled there, it was left running with its pid
    # file. (test_new_srv_records_... failed once with an SRV pid file left, in the unit
    # suite under 12 busy loops; this is the one way found for it.)
    from agent.dns import dnsmasq
    from agent.dns.srvdns import SrvDns

    launched: list[asyncio.subprocess.Process] = []
    real_launch = dnsmasq.launch
    directory = tmp_path / "dns" / "n1"
    directory.mkdir(parents=True)

    async def scenario() -> None:
        returns = asyncio.Event()  # the launch returns only once this is set

        async def late_launch(binary: str, conf: Path) -> asyncio.subprocess.Process:
            proc = await real_launch(binary, conf)
            launched.append(proc)
            await returns.wait()
            return proc

        monkeypatch.setattr(dnsmasq, "launch", late_launch)
        srv = SrvDns(directory, "n1", "cluster.local", fake_dnsmasq)
        serving = asyncio.create_task(srv.serve("srv-host=_x._tcp.a.cluster.local,a,80\n"))
        try:
            await _until(
                "the SRV dnsmasq's pid file",
                lambda: all(_srv_pids(tmp_path).values()) and _srv_pids(tmp_path),
            )
            serving.cancel()  # what DnsServer.stop does to a swap under way
            await asyncio.sleep(0)
            returns.set()
            with pytest.raises(asyncio.CancelledError):
                await serving
            await srv.stop()

            (proc,) = launched
            assert proc.returncode is not None and not _alive(proc.pid)
            assert not list(directory.glob("srv-*.pid")) and not list(directory.glob("srv-*.conf"))
        finally:
            for proc in launched:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    _run(scenario)
