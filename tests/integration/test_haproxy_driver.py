"""The HAProxy driver against a real HAProxy 2.6: traffic moves, reloads are hitless, stop is clean.

Two tiny HTTP servers in this process answer their own name; HAProxy listens on free loopback
ports, its runtime files in a directory deeper than a unix socket path may be. HAProxy outlives
a driver that closes, and the next driver adopts it. A load thread keeps sending requests (each
on a new connection) while endpoints come and go and a reload happens, and must see no failure
at all. Under CI a missing haproxy binary fails the test instead of skipping it
(tests/support.py).
"""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.nodeproxy.process import ProxyPaths, install
from master.lb.adopt import UNKNOWN_POD
from master.lb.haproxy import HAProxyDriver, pid_alive
from master.lb.model import Endpoint, LbService, LbSettings, LbState, Slot
from master.lb.process import stop_running
from master.lb.runtime import HAProxyError, send_command
from tests.lb_support import render_config
from tests.support import require_haproxy

pytestmark = pytest.mark.integration

SETTINGS = LbSettings(listen_address="127.0.0.1")


@pytest.fixture
def haproxy_bin() -> str:
    return require_haproxy()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """The LB dir; deeper than a unix socket path may be, as real data dirs can be."""
    deep = tmp_path / ("d" * 60) / "master-data" / "lb"
    assert len(str(deep / "master.sock")) > 107
    yield deep
    # HAProxy outlives drivers by design: whatever a test left running is stopped by PID.
    stop_running(deep)


class NamedServer:
    """An HTTP server on 127.0.0.1:0 whose every answer is its own name."""

    def __init__(self, name: str) -> None:
        body = name.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.name = name
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def endpoint(self, *, draining: bool = False) -> Endpoint:
        return Endpoint(
            pod=f"pod-{self.name}",
            address="127.0.0.1",
            port=self.port,
            ready=True,
            draining=draining,
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def servers() -> Iterator[tuple[NamedServer, NamedServer]]:
    a, b = NamedServer("a"), NamedServer("b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


class Load(threading.Thread):
    """Requests through HAProxy, one connection each, until stopped (bounded in count and time)."""

    def __init__(self, port: int, max_requests: int = 3000, max_seconds: float = 180.0) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.answers: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while (
            not self.stopped.is_set()
            and len(self.answers) + len(self.failures) < self.max_requests
            and time.monotonic() < deadline
        ):
            try:
                self.answers.append((time.monotonic(), get(self.port)))
            except (OSError, urllib.error.URLError) as err:
                self.failures.append(repr(err))
            # Pacing, not waiting for a condition: keeps two cores free for HAProxy and the test.
            self.stopped.wait(0.002)

    def wait_for(self, count: int) -> None:
        """Until `count` requests were answered or failed. The deadline is the thread's own
        bounds (max_requests, max_seconds): a fixed 10 s for 20 more requests, or for 300 in
        all, was missed at load 40-60 (1 of 4 runs of the traffic test)."""
        while (done := len(self.answers) + len(self.failures)) < count:
            assert self.is_alive() or len(self.answers) + len(self.failures) >= count, (
                f"the load thread ended after {done} of {count} requests"
            )
            time.sleep(0.01)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


def web(*endpoints: Endpoint, port: int) -> LbService:
    return LbService(name="web", port_name="http", listen_port=port, endpoints=endpoints)


def api(*endpoints: Endpoint, port: int) -> LbService:
    return LbService(name="api", port_name="", listen_port=port, endpoints=endpoints)


def answers(port: int, n: int) -> list[str]:
    return [get(port) for _ in range(n)]


def test_traffic_follows_endpoints_and_reloads_without_a_failed_request(
    haproxy_bin: str, workdir: Path, servers: tuple[NamedServer, NamedServer]
) -> None:
    a, b = servers
    web_port, api_port = free_port(), free_port()
    driver = HAProxyDriver(workdir, SETTINGS, haproxy_bin)

    async def scenario() -> None:
        await driver.start()
        try:
            await driver.apply([web(a.endpoint(), b.endpoint(), port=web_port)])
            assert driver.listen_port("web", "http") == web_port
            assert set(answers(web_port, 10)) == {"a", "b"}

            load = Load(web_port)
            load.start()
            try:
                load.wait_for(20)

                # Endpoint removed: runtime commands only, all traffic to the other one.
                await driver.apply([web(a.endpoint(), port=web_port)])
                assert answers(web_port, 10) == ["a"] * 10

                # New service: a reload while the load keeps going.
                reloads = (await driver.processes()).reloads
                started = time.monotonic()
                await driver.apply(
                    [web(a.endpoint(), port=web_port), api(b.endpoint(), port=api_port)]
                )
                reloaded = time.monotonic()
                assert (await driver.processes()).reloads == reloads + 1
                assert answers(api_port, 4) == ["b"] * 4
                assert answers(web_port, 4) == ["a"] * 4

                # Endpoint added back: measure apply() -> first request reaching it.
                t0 = time.monotonic()
                await driver.apply(
                    [
                        web(a.endpoint(), b.endpoint(), port=web_port),
                        api(b.endpoint(), port=api_port),
                    ]
                )
                for _ in range(50):
                    if get(web_port) == "b":
                        break
                latency = time.monotonic() - t0
                assert (await driver.processes()).reloads == reloads + 1  # no reload for that
                print(f"\napply() of a new endpoint -> first request there: {latency * 1e3:.1f} ms")

                # Draining endpoint: no new requests.
                await driver.apply(
                    [
                        web(a.endpoint(draining=True), b.endpoint(), port=web_port),
                        api(b.endpoint(), port=api_port),
                    ]
                )
                assert answers(web_port, 10) == ["b"] * 10
                # "DRAIN 1/2": a slot leaving maint starts at the lowest healthy level.
                states = {
                    s.server: s.status.split()[0]
                    for s in await driver.server_states()
                    if s.backend == "be_web.http"
                }
                assert states["s0"] == "DRAIN"

                load.wait_for(max(300, len(load.answers) + len(load.failures) + 20))
            finally:
                load.stop()

            assert load.failures == []
            during_reload = [t for t, _ in load.answers if started <= t <= reloaded]
            print(f"load: {len(load.answers)} requests, {len(during_reload)} during the reload")
            assert {name for _, name in load.answers} == {"a", "b"}
            assert during_reload, "no request overlapped the reload: the test proves nothing"

            # Service removed: its listener goes away with the reload.
            await driver.apply([web(b.endpoint(), port=web_port)])
            with pytest.raises(OSError):
                get(api_port)
            assert get(web_port) == "b"
        finally:
            procs = await driver.processes()
            await driver.stop()
        assert not any(pid_alive(pid) for pid in (procs.master_pid, *procs.workers))
        assert not driver.runtime_socket.exists()
        assert not driver.master_socket.exists()

    asyncio.run(scenario())


def test_failed_reload_keeps_serving_the_old_config(
    haproxy_bin: str, workdir: Path, servers: tuple[NamedServer, NamedServer]
) -> None:
    a, _ = servers
    web_port = free_port()
    driver = HAProxyDriver(workdir, SETTINGS, haproxy_bin)

    async def scenario() -> None:
        await driver.start()
        try:
            await driver.apply([web(a.endpoint(), port=web_port)])
            before = driver.state
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                busy = taken.getsockname()[1]

                # haproxy -c does not bind; a reload that fails to bind pauses the serving
                # worker's listeners for about a second, so the driver must not try it.
                load = Load(web_port)
                load.start()
                try:
                    load.wait_for(20)
                    for _ in range(3):
                        with pytest.raises(HAProxyError, match=f"127.0.0.1:{busy}"):
                            await driver.apply(
                                [web(a.endpoint(), port=web_port), api(a.endpoint(), port=busy)]
                            )
                    seen = len(load.answers) + len(load.failures)
                    load.wait_for(seen + 20)
                finally:
                    load.stop()
                assert load.failures == [], load.failures[:3]

            assert driver.state == before
            assert get(web_port) == "a"
            await driver.apply([web(a.endpoint(), port=web_port), api(a.endpoint(), port=busy)])
            assert get(busy) == "a"
        finally:
            await driver.stop()

    asyncio.run(scenario())


def test_rendered_config_is_accepted_by_haproxy(haproxy_bin: str, workdir: Path) -> None:
    endpoints = tuple(
        Endpoint(
            pod=f"p{i}",
            address="::1" if i % 2 else "127.0.0.1",
            port=9000 + i,
            ready=i % 3 != 0,
            draining=i % 5 == 0,
        )
        for i in range(20)
    )
    services = [web(*endpoints, port=18080), api(port=18081)]
    workdir.mkdir(parents=True)
    config = workdir / "haproxy.cfg"
    config.write_text(render_config(services, SETTINGS, "unix@runtime.sock"))

    result = subprocess.run(
        [haproxy_bin, "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=workdir,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_stop_without_start_and_apply_after_stop(haproxy_bin: str, workdir: Path) -> None:
    driver = HAProxyDriver(workdir, SETTINGS, haproxy_bin)

    async def scenario() -> None:
        await driver.stop()  # nothing started: nothing to do
        with pytest.raises(HAProxyError, match="not running"):
            await driver.apply([])

    asyncio.run(scenario())


def test_haproxy_outlives_its_driver_and_the_next_one_adopts_it_without_a_reload(
    haproxy_bin: str, workdir: Path, servers: tuple[NamedServer, NamedServer]
) -> None:
    a, b = servers
    port = free_port()

    async def scenario() -> None:
        first = HAProxyDriver(workdir, SETTINGS, haproxy_bin)
        await first.start()
        await first.apply([web(a.endpoint(), b.endpoint(draining=True), port=port)])
        pid, held = first.pid, first.state
        assert pid is not None
        reloads = (await first.processes()).reloads
        await first.close()

        # No driver: HAProxy keeps serving, in its own session.
        assert pid_alive(pid) and os.getsid(pid) == pid != os.getsid(0)
        assert answers(port, 6) == ["a"] * 6
        assert {p.name for p in workdir.iterdir()} >= {
            "haproxy.cfg",
            "haproxy.pid",
            "master.sock",
            "runtime.sock",
            "state.json",
        }

        second = HAProxyDriver(workdir, SETTINGS, haproxy_bin)
        await second.start()
        assert second.adopted and second.pid == pid
        assert second.state == held  # drain included: read back, not re-applied
        await second.apply([web(a.endpoint(), b.endpoint(draining=True), port=port)])
        await second.apply([web(b.endpoint(), port=port)])
        assert (await second.processes()).reloads == reloads  # runtime changes only
        assert answers(port, 6) == ["b"] * 6

        # Changed behind the file's back (a master killed between a command and the file
        # write): the live address wins, and the next plan rewrites that slot.
        await send_command(
            second._sockets.address("runtime.sock"),
            "set server be_web.http/s1 addr 127.0.0.1 port 9",
        )
        await second.close()
        third = HAProxyDriver(workdir, SETTINGS, haproxy_bin)
        await third.start()
        slots = third.state.backends[0].slots
        assert slots[0] == Slot()  # emptied by the last apply, as saved
        assert (slots[1].pod, slots[1].port) == (UNKNOWN_POD, 9)
        await third.apply([web(a.endpoint(), port=port)])
        wait_until_answers(port, "a")
        await third.close()

        # Other settings (timeouts): only a reload can apply them, and it is hitless.
        slower = LbSettings(listen_address="127.0.0.1", server_timeout_ms=90_000)
        fourth = HAProxyDriver(workdir, slower, haproxy_bin)
        await fourth.start()
        assert fourth.adopted and fourth.state == LbState()
        await fourth.apply([web(a.endpoint(), port=port)])
        assert (await fourth.processes()).reloads == reloads + 1
        assert "timeout server 90000ms" in (workdir / "haproxy.cfg").read_text()
        assert answers(port, 4) == ["a"] * 4
        await fourth.stop()
        assert not pid_alive(pid)
        assert not (workdir / "haproxy.pid").exists()

    asyncio.run(scenario())


def wait_until_answers(port: int, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while answers(port, 4) != [name] * 4:
        assert time.monotonic() < deadline, f"port {port} never answered only {name}"
        time.sleep(0.05)


def test_a_relative_data_dir_serves(
    haproxy_bin: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    servers: tuple[NamedServer, NamedServer],
) -> None:
    """The master's LB and an agent's node proxy in folders named relative to the working
    directory (`make demo-local` gives both so: --data-dir .demo/master-data, --state-dir
    .demo/NODE-state). HAProxy runs, and checks its config, from that folder, and looked
    for the relative config path inside it: neither ever started."""
    a, _ = servers
    monkeypatch.chdir(tmp_path)
    web_port = free_port()
    driver = HAProxyDriver(Path("master-data/lb"), SETTINGS, haproxy_bin)

    async def scenario() -> None:
        await driver.start()
        try:
            await driver.apply([web(a.endpoint(), port=web_port)])
            assert answers(web_port, 2) == ["a", "a"]
        finally:
            await driver.stop()

    try:
        asyncio.run(scenario())
        proxy = ProxyPaths(Path("agent-state/nodeproxy"))
        proxy.workdir.mkdir(parents=True)
        install(
            haproxy_bin,
            proxy,
            "global\ndefaults\n    mode tcp\nlisten idle\n    bind unix@idle.sock\n",
        )
        assert proxy.config.exists()
    finally:
        stop_running(tmp_path / "master-data/lb")
