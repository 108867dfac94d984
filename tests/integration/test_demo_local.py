"""`make demo-local` itself: compose/demo-local.sh `up`, then `down`, as a user runs them.

A master and two agents as processes on this machine, HAProxy as the load balancer and as
each node's proxy, the seed manifests (examples/seed) on real Docker. The script broke once
without any test noticing; this one runs it. Everything the machine shares is moved out of
the way through the script's PINNACE_DEMO_* variables, so the test never meets another run
(CI's other tests, someone's demo): its own folder, free ports for the master, its
Kubernetes API, /metrics and the load balancer, node names of its own, a
random service range and node-port window. Checked: the script ends well, both nodes are
Ready, a request through the load balancer is answered by one of the Deployment's pods, and
`down` leaves no process (master, agents, HAProxys, dnsmasqs), container or file behind.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import docker
import psutil
import pytest

from agent.nodeproxy.udprules import table_name
from tests.integration.cluster import SHM, remove_local_route, service_range, wait_for
from tests.support import REPO, env_with_haproxy, free_port, node_made, require_haproxy

pytestmark = pytest.mark.integration

SCRIPT = REPO / "compose" / "demo-local.sh"
# nginx's page names its hostname: the pod's name, as Kubernetes gives it.
HOSTNAME = re.compile(r'hostname">([^<]+)<')
# `up`: start, apply, scale to 5, a container killed and restarted, kubectl (~1 min idle).
UP_TIMEOUT = 420


def _processes_of(folder: Path) -> list[psutil.Process]:
    """The processes whose command line names `folder`: the master (--data-dir), the agents
    (--state-dir), their HAProxys and dnsmasqs (configs inside them)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(folder) in " ".join(proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _nft_tables() -> set[str]:
    """The nftables tables on this machine (none where nft is missing)."""
    if shutil.which("nft") is None:
        return set()
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    return {line.split()[-1] for line in done.stdout.splitlines() if line.startswith("table")}


def _containers(engine: docker.DockerClient, nodes: list[str]) -> list[Any]:
    return [
        c
        for node in nodes
        for c in engine.containers.list(all=True, filters={"label": f"pinnace.node={node}"})
    ]


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "pinnace"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _demo(env: dict[str, str], verb: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), verb],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
    )


def test_demo_local_comes_up_serves_through_its_load_balancer_and_goes_down_without_a_trace(
    docker_client: docker.DockerClient,
) -> None:
    require_haproxy()
    run = uuid.uuid4().hex[:6]
    # Not under pytest's tmp_path (0700): dnsmasq, an unprivileged user once started, reads
    # the node's DNS folder inside the demo's.
    root = Path(tempfile.mkdtemp(prefix=f"pinnace-demo-{run}-"))
    root.chmod(0o755)
    shm = Path(tempfile.mkdtemp(prefix=f"pinnace-demo-{run}-", dir=SHM))
    demo = root / "demo"
    nodes = [node_made(f"demo-{run}-{i}") for i in (1, 2)]
    lb_port, services, first = free_port(), service_range(), random.randrange(30000, 32700, 50)
    master = f"127.0.0.1:{free_port()}"
    env = env_with_haproxy(
        {
            **os.environ,
            "PINNACE_DEMO_DIR": str(demo),
            "PINNACE_DEMO_PORT": master.rsplit(":", 1)[1],
            "PINNACE_DEMO_NODES": " ".join(nodes),
            "PINNACE_DEMO_METRICS_PORT": "0",
            "PINNACE_DEMO_LB_PORT": str(lb_port),
            "PINNACE_DEMO_MASTER_FLAGS": " ".join(
                (
                    "--api-listen=127.0.0.1:0",
                    "--metrics-listen=127.0.0.1:0",
                    # Shifted by the offset, the Ingress ports could pass 65535: off.
                    "--ingress-http-port=0",
                    "--ingress-https-port=0",
                    f"--service-cidr={services}",
                    f"--service-node-port-range={first}-{first + 49}",
                )
            ),
            "PINNACE_DEMO_AGENT_FLAGS": " ".join(
                (
                    f"--dns-dir={demo}/dns",
                    f"--volume-dir={shm}/volumes",
                    f"--memory-dir={shm}/memory",
                    f"--claim-dir={demo}/claims",
                )
            ),
        }
    )
    cli_env = {
        **env,
        "PINNACE_MASTER": master,
        "PINNACE_CONFIG": f"{demo}/master-data/pinnace.conf",
    }
    try:
        up = _demo(env, "up", UP_TIMEOUT)
        logs = "\n".join(f"{p.name}: {p.read_text()[-2000:]}" for p in demo.glob("*.log"))
        assert up.returncode == 0, f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}\n{logs}"

        listed = json.loads(_cli(cli_env, "get", "nodes", "-o", "json"))["items"]
        ready = {
            n["metadata"]["name"]
            for n in listed
            for c in n["status"]["conditions"]
            if c["type"] == "Ready" and c["status"] == "True"
        }
        assert ready == set(nodes)

        pods = {
            p["metadata"]["name"]
            for p in json.loads(_cli(cli_env, "get", "pods", "-o", "json"))["items"]
        }

        def answered_by_a_pod() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{lb_port}/", timeout=5) as resp:
                    found = HOSTNAME.search(resp.read().decode())
            except OSError:
                return None
            return found.group(1) if found and found.group(1) in pods else None

        wait_for("a pod's answer through the load balancer", answered_by_a_pod, 30)

        # What `up` started: the master and the agents (by the PIDs it wrote), the load
        # balancer's and the two node proxies' HAProxys, the nodes' dnsmasqs.
        started = _processes_of(demo)
        pids = {int((demo / f"{n}.pid").read_text()) for n in ("master", *nodes)}
        assert pids <= {p.pid for p in started}, (pids, started)
        names = [p.name() for p in started]
        assert names.count("haproxy") >= 3 and names.count("dnsmasq") >= 2, names

        down = _demo(env, "down", 120)
        assert down.returncode == 0, f"{down.stdout}\n{down.stderr}"
        assert not [p for p in started if p.is_running()], "a process outlived `down`"
        assert not _processes_of(demo)
        assert not _containers(docker_client, nodes)
        assert not demo.exists()
        assert not set(map(table_name, nodes)) & _nft_tables()  # (the node proxies' UDP rules)
    finally:
        if demo.exists():
            _demo(env, "down", 120)
        for proc in _processes_of(demo):  # ours: their command lines name our folder
            proc.kill()
        for container in _containers(docker_client, nodes):
            container.remove(force=True)
        remove_local_route(services)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)
