"""A stalled master stops no workload (issue 19): real master, real agents, real HAProxy.

The master is paused with SIGSTOP (a VM pause, a swap storm, a long stall) for
twice its lease and for 30 s, while a client sends requests
through the load balancer. Every agent stops hearing the master; each asks its
peer (agent/witness.py), learns that the peer hears nothing either, and keeps
its pods running; on resume the master notices its own stall and grants fresh
leases. Result: the same pods and containers before and after, no request
failed, no Fenced or Rescheduled event, and each node reports MasterUnreachable.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.test_agent_restarts import _ids, _inventory
from tests.integration.test_self_healing import (
    _controllers_passed,
    _events,
    _full_strength,
    _restart_counts,
    _running_pods,
    _wait_nodes_ready,
    _write_deployment,
)
from tests.support import free_port, require_haproxy

# 600 s, not the suite's 300: a run at load 50 was cut off at 300 s in its last checks
# (every one before had passed); its cluster alone took 1.5 minutes to start.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# The cluster's lease: 8 s, not the default 3 s. The witnesses' times follow the lease
# (agent/fencing.py witness_times): at 3 s an answer has 0.15 s beyond the peer's probe of
# the master, and on a machine at load 25-30 most answers missed it, so agents fenced in
# the middle of the pause (and once, with no pause at all, when the loaded master acked a
# heartbeat 3 s late): 2 of 2 runs failed before and after the answers were kept while
# fresh. What this test shows is the witness rule on real processes; that the default
# times decide right is tests/unit/test_agent_state.py's, on a fake clock.
LEASE = 8.0


@pytest.fixture(autouse=True)
def _need_haproxy() -> None:
    require_haproxy()


class RequestStream:
    """GETs `url` back to back (about 100/s) on a thread; counts answers and failures."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    resp.read()
                    self.ok += 1
            except OSError as exc:
                self.failed.append(f"{time.strftime('%H:%M:%S')} {exc}")
            self._stop.wait(0.01)

    def __enter__(self) -> RequestStream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _cluster_with_service(cluster: LocalCluster, tmp_path: Path) -> tuple[str, str, str]:
    port = free_port()
    cluster.start_master("--lb-port-offset", str(port - 80), "--lease-seconds", str(LEASE))
    n1, n2 = cluster.start_agent("n1"), cluster.start_agent("n2")
    _wait_nodes_ready(cluster, n1, n2)
    service = tmp_path / "svc.yaml"
    service.write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"
        "spec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n"
    )
    cluster.cli("apply", "-f", str(_write_deployment(tmp_path, "web", 4)), "-f", str(service))
    wait_for(
        "4 pods ready on both nodes",
        lambda: len(_running_pods(cluster, "web")) == 4 and _full_strength(cluster, "web", 4),
        60,
    )
    url = f"http://127.0.0.1:{port}/"

    def serving() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    wait_for("the load balancer serving all four", serving, 60)
    return url, n1, n2


def _stall_grant(cluster: LocalCluster) -> float | None:
    """The seconds the master's MasterStalled event gave every node, once it is recorded."""
    for event in cluster.get_json("events")["items"]:
        if event.get("reason") == "MasterStalled":
            granted = re.search(r"every node has ([0-9.]+)s", event.get("message", ""))
            assert granted is not None, event
            return float(granted.group(1))
    return None


def _agent_verdicts(cluster: LocalCluster) -> str:
    """The agents' own words on holding or fencing, for a failure's message."""
    lines = []
    for log in sorted(cluster.workdir.glob("agent-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if any(w in line for w in ("fenc", "keeping its pods", "master is back", "peer")):
                lines.append(f"{log.stem}: {line[:300]}")
    return "\n".join(lines[-40:])


@pytest.mark.parametrize("pause", [2 * LEASE, 30.0])
def test_a_master_paused_beyond_its_lease_replaces_no_pod_and_fails_no_request(
    cluster: LocalCluster, tmp_path: Path, pause: float
) -> None:
    url, n1, n2 = _cluster_with_service(cluster, tmp_path)
    pods, ids, restarts = _inventory(cluster), _ids(cluster), _restart_counts(cluster)
    assert cluster.master_proc is not None

    with RequestStream(url) as stream:
        wait_for("traffic flowing before the fault", lambda: stream.ok >= 20, 30)
        cluster.master_proc.send_signal(signal.SIGSTOP)
        before = stream.ok
        try:
            # The fault itself lasts `pause` seconds (this is no wait for a condition).
            time.sleep(pause)
            during = stream.ok - before
        finally:
            cluster.master_proc.send_signal(signal.SIGCONT)
        # The master saw its own stall and gave every node a fresh lease: `grant` seconds
        # from a moment before this one.
        grant = wait_for("the master's MasterStalled", lambda: _stall_grant(cluster), 60)
        grant_over = time.monotonic() + grant
        _wait_nodes_ready(cluster, n1, n2)
        wait_for(
            "both agents saying the master was unreachable",
            lambda: _events(cluster).count("MasterUnreachable") >= 2,
            60,
        )
        # A node wrongly judged by the stall is judged by a pass once the grant is over: the
        # stream goes on until then, and until two passes of the controllers have begun
        # after it (one could have checked the nodes just before). A fixed LEASE + 0.5 s
        # after the agents' notices could end before a loaded master made that pass, and
        # then checked nothing.
        time.sleep(max(0.0, grant_over - time.monotonic()))  # a moment, not a condition
        _controllers_passed(cluster, tmp_path, "marker-a")
        _controllers_passed(cluster, tmp_path, "marker-b")

    verdicts = _agent_verdicts(cluster)
    assert stream.failed == [], (stream.failed[:5], verdicts)
    # The stream ran through the pause (how many a second is the machine's business).
    assert during >= 10, (during, stream.ok)
    assert _inventory(cluster) == pods
    assert _ids(cluster) == ids
    assert _restart_counts(cluster) == restarts
    events = _events(cluster)
    # No node judged by the stall: not NotReady, nor Unknown with evictions paused (what a
    # grant that heartbeats did not renew led to, at the grant's end: after the fixed
    # window this test used to keep, in a run at load 26).
    for wrong in ("Rescheduled", "Fenced", "NodeNotReady", "NodeStatusUnknown", "EvictionsPaused"):
        assert wrong not in events, f"{wrong} in the events:\n{events}\n{verdicts}"
