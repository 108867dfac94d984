"""Issue 18 on real processes: the load balancer outlives the master, and upgrades fail no request.

One cluster for the module (a master, two agents, the seed Deployment and Service; HAProxy on a
free loopback port) and a steady 100 requests/s through the load balancer, each on a new
connection, while the master is killed with SIGKILL and kept down 10 s, stopped gracefully,
killed while a pod dies, and while master and agents are upgraded in place (stopped and started
again one at a time). Every request must succeed, and the HAProxy serving them must be the same
process throughout: a starting master adopts it. Last, `--stop-lb-on-exit` and `pinnace lb stop`
leave no HAProxy process and no runtime file behind.
"""

from __future__ import annotations

import math
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import docker
import pytest

from master.lb.process import LbPaths, find_running, group_members
from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.traffic import Load, steady_load
from tests.support import SEED, require_haproxy

pytestmark = pytest.mark.integration

# The outage the issue asks to survive: the master gone for this long, and at least this many
# requests sent while it is (100/s for 10 s; a loaded machine sends them more slowly, and the
# master then stays away longer: the test counts requests, never a rate).
MASTER_DOWN_SECONDS = 10.0
REQUESTS_WHILE_DOWN = 1000


@dataclass
class Setup:
    cluster: LocalCluster
    url: str
    master_port: int
    master_flags: tuple[str, ...]

    @property
    def lb_paths(self) -> LbPaths:
        return LbPaths(self.cluster.workdir / "master-data" / "lb")

    def haproxy_pid(self) -> int:
        pid = find_running(self.lb_paths)
        assert pid is not None, "no HAProxy serves the cluster"
        return pid

    def start_master(self, *extra: str) -> None:
        self.cluster.start_master(*self.master_flags, *extra, port=self.master_port)

    def stop_master(self, sig: int) -> None:
        assert self.cluster.master_proc is not None
        self.cluster.kill(self.cluster.master_proc, sig)

    def wait_settled(self, since: float = 0.0, restarted: str = "") -> None:
        """Both nodes Ready, 3 ready pods; the agents (or only the `restarted` node's)
        registered after `since` (wall clock)."""
        wait_for(
            "two Ready nodes whose agents are connected",
            lambda: _ready_nodes(self.cluster, since, restarted) == 2,
            timeout=60,
        )
        wait_for("3 ready pods", lambda: _ready_pods(self.cluster) == 3, timeout=60)


def _ready_nodes(cluster: LocalCluster, since: float, restarted: str) -> int:
    ready = 0
    for node in cluster.get_json("nodes")["items"]:
        after = 0.0 if restarted and node["metadata"]["name"] != restarted else since
        conditions = {c["type"]: c for c in node["status"]["conditions"]}
        heartbeat = datetime.fromisoformat(
            conditions["Ready"]["lastHeartbeatTime"].replace("Z", "+00:00")
        ).timestamp()
        # Set when the agent registers (heartbeats only renew the lease); shown in whole
        # seconds. Every earlier registration was long before `since`.
        if conditions["Ready"]["status"] == "True" and heartbeat >= math.floor(after):
            ready += 1
    return ready


def _ready_pods(cluster: LocalCluster) -> int:
    pods = cluster.pods()
    ready = [
        p
        for p in pods
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
    ]
    return len(ready) if len(ready) == len(pods) else -1


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Setup]:
    require_haproxy()
    cluster = LocalCluster(tmp_path_factory.mktemp("lb-outlives"), docker_client)
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            lb_port = int(s.getsockname()[1])
        flags = ("--lb-port-offset", str(lb_port - 80))
        address = cluster.start_master(*flags)
        setup = Setup(
            cluster, f"http://127.0.0.1:{lb_port}/", int(address.rsplit(":", 1)[1]), flags
        )
        cluster.start_agent("n1")
        cluster.start_agent("n2")
        cluster.cli("apply", "-f", str(SEED))
        setup.wait_settled()
        wait_for("the LB to serve", lambda: _serves(setup.url), timeout=30)
        yield setup
    finally:
        cluster.close()


def _serves(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bool(resp.status == 200)


def _answers(url: str) -> bool:
    try:
        return _serves(url)
    except OSError:
        return False


def _keep_down(load: Load) -> None:
    """The scenario itself: the master stays away MASTER_DOWN_SECONDS (a sleep, not a wait
    for a condition) and until REQUESTS_WHILE_DOWN requests were sent meanwhile."""
    sent = load.sent
    time.sleep(MASTER_DOWN_SECONDS)
    wait_for(
        f"{REQUESTS_WHILE_DOWN} requests while the master is down",
        lambda: load.sent >= sent + REQUESTS_WHILE_DOWN,
        timeout=120,
        interval=0.05,
    )


def _more_requests(load: Load, count: int = 200) -> None:
    sent = load.sent
    wait_for(f"{count} more requests", lambda: load.sent >= sent + count, timeout=60)


def test_master_kill_9_and_10_s_down_fails_no_request(setup: Setup) -> None:
    haproxy = setup.haproxy_pid()
    with steady_load(setup.url, rate=100) as load:
        setup.stop_master(signal.SIGKILL)
        _keep_down(load)
        assert setup.haproxy_pid() == haproxy
        restarted = time.time()
        setup.start_master()
        setup.wait_settled(restarted)
        _more_requests(load)

    load.check()
    assert setup.haproxy_pid() == haproxy  # adopted, not restarted
    log = (setup.cluster.workdir / "master.log").read_text()
    assert f"load balancer (HAProxy) adopted, pid {haproxy}" in log


def test_graceful_master_restart_fails_no_request(setup: Setup) -> None:
    haproxy = setup.haproxy_pid()
    with steady_load(setup.url, rate=100) as load:
        setup.stop_master(signal.SIGTERM)
        assert setup.cluster.master_proc is not None
        assert setup.cluster.master_proc.returncode == 0
        _keep_down(load)
        restarted = time.time()
        setup.start_master()
        setup.wait_settled(restarted)
        _more_requests(load)

    load.check()
    assert setup.haproxy_pid() == haproxy


def test_a_pod_killed_while_the_master_is_down_fails_no_request(setup: Setup) -> None:
    haproxy = setup.haproxy_pid()
    with steady_load(setup.url, rate=100) as load:
        setup.stop_master(signal.SIGKILL)
        victim = setup.cluster.containers()[0]
        with load.hard_kill():
            victim.kill()
        _keep_down(load)
        restarted = time.time()
        setup.start_master()
        setup.wait_settled(restarted)
        # Back in the load balancer through the normal path: every pod answers again.
        running = {c.labels["pinnace.pod"] for c in setup.cluster.containers()}
        load.served_by.clear()
        wait_for("every running pod to answer", lambda: running <= load.served_by, timeout=30)

    load.check()
    assert setup.haproxy_pid() == haproxy


def test_upgrading_master_and_agents_in_place_fails_no_request(setup: Setup) -> None:
    """The README's upgrade: stop, replace the package, start; the master, then each agent."""
    haproxy = setup.haproxy_pid()
    cluster = setup.cluster
    with steady_load(setup.url, rate=100) as load:
        setup.stop_master(signal.SIGTERM)
        restarted = time.time()
        setup.start_master()
        setup.wait_settled(restarted)
        for short in ("n1", "n2"):
            name = cluster.node(short)
            cluster.kill(cluster.agents[name], signal.SIGTERM)
            restarted = time.time()
            cluster.start_agent(short)
            setup.wait_settled(restarted, name)
        _more_requests(load)
        wait_for("500 requests in all", lambda: load.sent >= 500, timeout=60)

    load.check()
    assert setup.haproxy_pid() == haproxy


def test_stop_lb_on_exit_and_lb_stop_leave_no_haproxy_behind(setup: Setup) -> None:
    haproxy = setup.haproxy_pid()
    paths = setup.lb_paths

    setup.stop_master(signal.SIGTERM)
    setup.start_master("--stop-lb-on-exit")
    setup.wait_settled()
    assert setup.haproxy_pid() == haproxy  # adopted, even so
    setup.stop_master(signal.SIGTERM)

    assert group_members(haproxy) == []
    assert not paths.pidfile.exists() and not paths.master_socket.exists()

    setup.start_master()
    wait_for("a new HAProxy to serve", lambda: _answers(setup.url), timeout=30)
    fresh = setup.haproxy_pid()
    setup.stop_master(signal.SIGTERM)
    assert _serves(setup.url)  # the default: it keeps serving

    out = setup.cluster.cli("lb", "stop", "--data-dir", str(paths.workdir.parent))

    assert f"HAProxy pid {fresh}" in out.stdout
    assert group_members(fresh) == []
    assert not paths.runtime_socket.exists() and not paths.pidfile.exists()
    again = setup.cluster.cli("lb", "stop", "--data-dir", str(paths.workdir.parent))
    assert "no load balancer is running" in again.stdout
    with pytest.raises(OSError):
        _serves(setup.url)
    assert Path(paths.config).exists()  # the config stays for the operator to read
