"""`make demo-ha`: three etcd members, three masters, three agents; the leader killed.

Everything runs as processes on this machine (no compose): three etcd members
on loopback ports, three `pinnace master --store etcd --leader-elect` on TLS
sharing one cluster secret (so one CA, one admin config, one token list), each
with its own HAProxy on 127.0.0.2/3/4, and three agents that know all three
masters. A Deployment of three httpd pods behind a LoadBalancer Service runs;
then, under a steady stream of HTTP requests through a follower's load balancer
and a stream of writes (apply) to whichever master takes them, the leader is
killed with SIGKILL. The timeline is printed: when the leader's key went, when
a new leader held it, the first write accepted after the kill, how many
requests failed and how many acknowledged writes were lost (read back
afterwards). Everything started is stopped at the end, containers by label.

    make demo-ha            (or: PYTHONPATH=. .venv/bin/python compose/demo_ha.py)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tests.integration.cluster import wait_for
from tests.integration.masters import REPO
from tests.integration.test_ha_agent import SERVICE, WEB, lb_url, running, serves
from tests.integration.test_lb_outlives_master import steady_load
from tests.integration.test_leader_election import (
    NAMES,
    HaCluster,
    Writer,
    deployments,
    start_ha,
    stop_ha,
)


def say(text: str) -> None:
    print(f"[demo-ha] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_agents(ha: HaCluster, workdir: Path, run: str) -> list[subprocess.Popen[bytes]]:
    token = ha.masters.cli(ha.wait_leader().address, "token", "create", "--ttl", "1h")
    if token.returncode != 0:
        raise SystemExit(f"demo-ha: cannot make a join token: {token.stderr}")
    everyone = ",".join(ha.masters.addresses[n] for n in NAMES)
    agents = []
    for i in range(3):
        node = f"{run}-n{i + 1}"
        log = (workdir / f"{node}.log").open("ab")
        args = [
            sys.executable, "-m", "agent", "--master", everyone, "--name", node,
            "--advertise-address", "127.0.0.1", "--token", token.stdout.strip(),
            "--metrics-listen", "", "--state-dir", str(workdir / node),
            # The demo needs no cluster IPs or DNS on the nodes (and leaves no node proxy).
            "--no-node-proxy", "--cluster-dns=none",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        agents.append(subprocess.Popen(args, stdout=log, stderr=log, cwd=REPO, env=env))
    return agents


def stop_agents(agents: list[subprocess.Popen[bytes]], run: str) -> None:
    for proc in agents:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in agents:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
    with contextlib.suppress(Exception):
        import docker

        client = docker.from_env()
        for c in client.containers.list(all=True, filters={"label": "pinnace.node"}):
            if c.labels.get("pinnace.node", "").startswith(f"{run}-"):
                c.remove(force=True)


def scenario(ha: HaCluster) -> None:
    leader = ha.wait_leader()
    say(f"leader: {leader.name} at {leader.address}")
    applied = ha.masters.cli(
        leader.address, "apply", "-f", "-", stdin=SERVICE + WEB.format(name="web", replicas=3)
    )
    if applied.returncode != 0:
        raise SystemExit(f"demo-ha: apply failed: {applied.stderr}")
    wait_for("3 running pods", lambda: len(running(ha, leader.address)) == 3, timeout=90)
    for name in NAMES:
        url = lb_url(ha, name)
        wait_for(f"{name}'s load balancer", lambda u=url: serves(u), timeout=30)  # type: ignore[misc]
    survivor = next(n for n in NAMES if n != leader.name)
    before = running(ha, leader.address)
    say(f"3 pods running; every master's load balancer serves; requests go to {survivor}'s")

    writer = Writer(ha.masters, [ha.masters.addresses[n] for n in NAMES])
    thread = threading.Thread(target=writer.run)
    with steady_load(lb_url(ha, survivor)) as load:
        thread.start()
        try:
            wait_for("writes", lambda: len(writer.acked) >= 20, timeout=30)
            say(f"kill -9 {leader.name} (the leader) under both streams")
            killed_at = time.monotonic()
            gone: list[float] = []
            ha.masters.kill(leader.name)
            while ha.leader() is not None and ha.leader() == leader:
                time.sleep(0.005)
            gone.append(time.monotonic() - killed_at)
            while (new := ha.leader()) is None or new.name == leader.name:
                time.sleep(0.005)
            elected = time.monotonic() - killed_at
            first = wait_for("a write accepted", lambda: writer.first_sent_after(killed_at))
            time.sleep(2.0)  # the streams go on a little under the new leader
        finally:
            writer.stop.set()
            thread.join(timeout=30)
    stored = deployments(ha.masters, new.address)
    lost = [n for n in writer.acked if n not in stored]
    pods = running(ha, new.address)
    same = "the same pods as before" if pods == before else f"before: {before}"
    print()
    print("timeline (from kill -9 of the leader)")
    print(f"  +{gone[0]:.2f}s  the old leader's key is gone (its lease ran out)")
    print(f"  +{elected:.2f}s  {new.name} is the leader")
    print(f"  +{first - killed_at:.2f}s  first write accepted (sent after the kill)")
    print(
        f"  requests through {survivor}'s load balancer: {load.sent} sent, "
        f"{len(load.failures)} failed"
    )
    print(f"  writes: {len(writer.acked)} acknowledged, {len(lost)} lost")
    print(f"  pods running: {len(pods)} ({same})")


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-demo-ha-"))
    run = f"demo-ha-{uuid.uuid4().hex[:4]}"
    lb_port = free_port()
    say(
        f"starting 3 etcd members (--heartbeat-interval 50 --election-timeout 500, so the "
        f"masters' 1 s leader lease is granted as asked) and 3 masters (work dir {workdir})"
    )
    ha = start_ha(workdir, lb_port_offset=lb_port - 80)
    agents: list[subprocess.Popen[bytes]] = []
    try:
        say("masters: " + ", ".join(f"{n} {ha.masters.addresses[n]}" for n in NAMES))
        agents = start_agents(ha, workdir, run)
        say("3 agents joined with one token, knowing all three masters")
        scenario(ha)
    finally:
        stop_agents(agents, run)
        stop_ha(ha)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
