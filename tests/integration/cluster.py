"""Real pinnace processes for integration tests: a master and agents on 127.0.0.1.

`LocalCluster` starts `pinnace master` on port 0 (reading the bound port from its
first line), starts agents with node names unique to the test run, drives the
real CLI as a subprocess, and on close ends every process it started by PID and
removes every container labelled with one of its node names.

Security is on as in production: the master writes its admin config
(`<data-dir>/pinnace.conf`), which `env` hands to every CLI call through
PINNACE_CONFIG; agents join with a token made through the CLI (`token create`)
and keep their certificates in `<workdir>/agent-state/<node>`, so a restarted
agent rejoins without one. Their other files are the cluster's own too, so a test run
leaves nothing behind on the machine and two test files never share them: configMap/secret
files and memory emptyDirs in a folder of /dev/shm (a tmpfs, as the agent's defaults are),
claim files under `<workdir>/claims`, the node DNS in a folder of the temp dir.
A master started with `--insecure` makes agents and the CLI use `--insecure` too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import docker

from agent.claim_disks import ClaimDisks, DiskError
from agent.dns.server import stop_node_dns
from agent.memory_volumes import MemoryVolumeError, MemoryVolumes
from agent.nodeproxy.proxy import stop_proxy
from agent.runtime.port import LABEL_SANDBOX
from master.lb.process import stop_running
from tests.support import (
    engine_ghosts,
    env_with_haproxy,
    ghosts_said,
    node_made,
    remove_container,
)

REPO = Path(__file__).resolve().parents[2]
SHM = "/dev/shm"
T = TypeVar("T")


def service_range() -> ipaddress.IPv4Network:
    """A random /24 service range for one test's master: node proxies make it local to this
    host (`ip route replace local CIDR dev lo`), so no test may take Kubernetes' default."""
    return ipaddress.IPv4Network(f"10.{random.randint(200, 239)}.{random.randint(0, 255)}.0/24")


def remove_local_route(network: ipaddress.IPv4Network) -> None:
    """The node proxies' route for `network`, removed (an agent leaves it on purpose)."""
    subprocess.run(
        ["ip", "route", "del", "local", str(network), "dev", "lo", "table", "local"],
        capture_output=True,
        check=False,
    )


def pod_range(docker_client: docker.DockerClient) -> ipaddress.IPv4Network:
    """A random /20 pod range (--cluster-cidr: 16 node subnets of /24) that no Docker
    network on this machine overlaps: each agent makes a bridge of its node's subnet, and
    concurrent runs on one machine must not ask for the same one."""
    taken = [
        ipaddress.ip_network(c["Subnet"], strict=False)
        for n in docker_client.api.networks()
        for c in ((n.get("IPAM") or {}).get("Config") or [])
        if c.get("Subnet") and ":" not in c["Subnet"]
    ]
    for _ in range(100):
        network = ipaddress.IPv4Network(
            f"10.{random.randint(100, 199)}.{random.randrange(0, 256, 16)}.0/20"
        )
        if not any(network.overlaps(t) for t in taken):
            return network
    raise AssertionError("no free /20 in 10.100.0.0-10.199.255.255 for a pod range")


def remove_pod_range_rules(network: ipaddress.IPv4Network) -> None:
    """The agents' firewall rules for pod range `network` (agent/hostgw/plan.py), removed
    (an agent leaves them on purpose)."""
    comment = f"pinnace pod network {network}"
    for table, chain, target in (
        ("filter", "DOCKER-USER", "ACCEPT"),
        ("nat", "POSTROUTING", "RETURN"),
    ):
        rule = ["-s", str(network), "-d", str(network), "-m", "comment", "--comment", comment]
        for _ in range(10):
            done = subprocess.run(
                ["iptables", "-w", "5", "-t", table, "-D", chain, *rule, "-j", target],
                capture_output=True,
                check=False,
            )
            if done.returncode != 0:
                break


def wait_for(
    what: str, check: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2
) -> T:
    """Poll `check` until it returns a truthy value; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


# Both Ingress ports turned off (see LocalCluster.start_master).
NO_INGRESS = ("--ingress-http-port", "0", "--ingress-https-port", "0")


def asks_ingress(extra: tuple[str, ...]) -> bool:
    return any(a.startswith(("--ingress-http-port", "--ingress-https-port")) for a in extra)


class LocalCluster:
    def __init__(self, workdir: Path, docker_client: docker.DockerClient) -> None:
        self.workdir = workdir
        self.docker = docker_client
        self.run_id = uuid.uuid4().hex[:6]
        self.master_proc: subprocess.Popen[bytes] | None = None
        self.master_address = ""
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self._all_procs: list[subprocess.Popen[bytes]] = []
        self.node_names: list[str] = []
        self.env = env_with_haproxy({**os.environ, "PYTHONUNBUFFERED": "1"})
        self.insecure = False
        self._token = ""
        self.api_url = ""
        self._dns_root: Path | None = None
        self._shm_root: Path | None = None

    # -- processes ----------------------------------------------------------------

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{log_name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=log, env=self.env, cwd=REPO
        )
        self._all_procs.append(proc)
        return proc

    def start_master(self, *extra: str, port: int = 0) -> str:
        listen = f"127.0.0.1:{port}"
        # The Kubernetes API on a port of its own too, unless the test says where.
        api = [] if "--api-listen" in extra else ["--api-listen", "127.0.0.1:0"]
        # The Ingress ports are off unless the test asks for them: they are shifted by
        # --lb-port-offset, and a test's offset from a random free port would put 8880 or
        # 8443 past 65535 (the master refuses that) or onto another program's port.
        ingress = [] if asks_ingress(extra) else list(NO_INGRESS)
        proc = self._spawn(
            [
                "-m",
                "master.cli.main",
                "master",
                "--listen",
                listen,
                "--data-dir",
                str(self.workdir / "master-data"),
                *api,
                *ingress,
                *extra,
            ],
            "master",
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "listening on" not in line:
            proc.kill()
            raise AssertionError(f"master did not start: {line!r}; see {self.workdir}/master.log")
        self.master_address = line.strip().rsplit(" ", 1)[-1]
        api_listen = api[1] if api else extra[list(extra).index("--api-listen") + 1]
        if api_listen:
            # The second line names the Kubernetes API's URL.
            self.api_url = proc.stdout.readline().decode().strip().rsplit(" ", 1)[-1]
        self.master_proc = proc
        self.insecure = "--insecure" in extra
        if not self.insecure:
            self.env["PINNACE_CONFIG"] = str(self.config_path)
        return self.master_address

    @property
    def config_path(self) -> Path:
        """The admin credentials the master wrote."""
        return self.workdir / "master-data" / "pinnace.conf"

    def join_token(self) -> str:
        """A join token for this cluster (made once, through the CLI)."""
        if not self._token:
            self._token = self.cli("token", "create", "--ttl", "2h").stdout.strip()
        return self._token

    def agent_state_dir(self, name: str) -> Path:
        return self.workdir / "agent-state" / name

    @property
    def shm_root(self) -> Path:
        """This cluster's folder on /dev/shm: secrets' files must be on a tmpfs."""
        if self._shm_root is None:
            self._shm_root = Path(tempfile.mkdtemp(prefix=f"pinnace-{self.run_id}-", dir=SHM))
        return self._shm_root

    @property
    def volume_root(self) -> Path:
        """The agents' --volume-dir (configMap and secret files)."""
        return self.shm_root / "volumes"

    @property
    def memory_root(self) -> Path:
        """The agents' --memory-dir (memory emptyDirs)."""
        return self.shm_root / "memory"

    @property
    def claim_root(self) -> Path:
        """The agents' --claim-dir (claim volumes' loop-mounted files)."""
        return self.workdir / "claims"

    @property
    def dns_root(self) -> Path:
        """The agents' --dns-dir: a folder of its own in the temp dir, not under the workdir,
        which dnsmasq (an unprivileged user once started) could not read."""
        if self._dns_root is None:
            self._dns_root = Path(tempfile.mkdtemp(prefix=f"pinnace-dns-{self.run_id}-"))
            self._dns_root.chmod(0o755)
        return self._dns_root

    def node_dirs(self, extra: tuple[str, ...]) -> list[str]:
        """The agent flags that keep its files in this cluster's own folders, but those the
        test gives itself."""
        given = {a.split("=", 1)[0] for a in extra}
        dirs = {
            "--volume-dir": self.volume_root,
            "--memory-dir": self.memory_root,
            "--claim-dir": self.claim_root,
        }
        flags = [f"{flag}={path}" for flag, path in dirs.items() if flag not in given]
        if "--dns-dir" not in given and "--cluster-dns=none" not in extra:
            flags.append(f"--dns-dir={self.dns_root}")
        return flags

    def node(self, short: str) -> str:
        name = f"it-{self.run_id}-{short}"
        if name not in self.node_names:
            self.node_names.append(node_made(name))
        return name

    def start_agent(self, short: str, *extra: str, node_proxy: bool = False) -> str:
        """An agent for node `short`; without `node_proxy` it serves no cluster IPs (most
        tests need none, and a node proxy outlives its agent: close() stops it by PID)."""
        name = self.node(short)
        proc = self._spawn(
            [
                "-m",
                "agent",
                "--master",
                self.master_address,
                "--name",
                name,
                "--advertise-address",
                "127.0.0.1",
                *self._agent_credentials(name),
                *([] if node_proxy else ["--no-node-proxy"]),
                *self._dns_flags(extra),
                *self.node_dirs((*extra, *self._dns_flags(extra))),
                *extra,
            ],
            f"agent-{short}",
        )
        self.agents[name] = proc
        return name

    @staticmethod
    def _dns_flags(extra: tuple[str, ...]) -> tuple[str, ...]:
        """Cluster DNS only where a test asks for it (else a dnsmasq per agent)."""
        asked = any(flag.startswith("--cluster-dns") for flag in extra)
        return () if asked else ("--cluster-dns=none",)

    def _agent_credentials(self, name: str) -> list[str]:
        if self.insecure:
            return ["--insecure"]
        return ["--token", self.join_token(), "--state-dir", str(self.agent_state_dir(name))]

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                proc.wait(timeout=60)

    def kill_master(self) -> None:
        assert self.master_proc is not None
        self.kill(self.master_proc)

    # -- CLI ------------------------------------------------------------------------

    def cli(
        self, *args: str, check: bool = True, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "master.cli.main", "--master", self.master_address),
                *(["--insecure"] if self.insecure else []),
                *args,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=60,
            input=stdin.decode() if stdin is not None else None,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"pinnace {' '.join(args)} failed: {result.stderr}")
        return result

    def get_json(self, kind: str, name: str | None = None) -> Any:
        args = ["get", kind] + ([name] if name else []) + ["-o", "json"]
        return json.loads(self.cli(*args).stdout)

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get_json("pods")["items"]
        return items

    # -- docker -----------------------------------------------------------------------

    def containers(self, running_only: bool = True, holders: bool = False) -> list[Any]:
        """The pods' app containers of this cluster's nodes (`holders`: and their pod
        sandboxes' holders, which carry the label pinnace.sandbox)."""
        # The SDK lists, then inspects each container: one removed in between (an
        # agent at work) raises NotFound, so list again.
        for _ in range(20):
            try:
                found = []
                for node in self.node_names:
                    found += self.docker.containers.list(
                        all=not running_only, filters={"label": f"pinnace.node={node}"}
                    )
                return [c for c in found if holders or LABEL_SANDBOX not in c.labels]
            except docker.errors.NotFound:
                time.sleep(0.05)
        listed = [
            c["Id"]
            for node in self.node_names
            for c in self.docker.api.containers(all=True, filters={"label": f"pinnace.node={node}"})
        ]
        ghosts = engine_ghosts(self.docker, listed)
        if ghosts:
            raise AssertionError(ghosts_said(ghosts))
        raise AssertionError("containers kept disappearing while being listed")

    def close(self) -> None:
        """Stops and removes everything this cluster started; every step runs even when one
        before it failed (a container the engine would not remove left the master's HAProxy
        running), and the first failure is raised at the end."""
        failures: list[BaseException] = []
        for step in (
            self._stop_processes,
            self._remove_containers,
            self._remove_node_dns,
            self._remove_node_objects,
            self._remove_volume_files,
            self._stop_proxies,
        ):
            try:
                step()
            except Exception as exc:  # the rest still runs; raised below
                failures.append(exc)
        if failures:
            raise failures[0]

    def _stop_processes(self) -> None:
        for proc in self._all_procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(timeout=60)
            if proc.stdout is not None:
                proc.stdout.close()

    def _remove_containers(self) -> None:
        for container in self.containers(running_only=False, holders=True):
            remove_container(container.client, container.id)

    def _remove_node_dns(self) -> None:
        # A killed agent's dnsmasq and the route to its DNS address (by its pid file).
        if self._dns_root is not None:
            for node in self.node_names:
                stop_node_dns(self._dns_root, node)
            shutil.rmtree(self._dns_root, ignore_errors=True)

    def _remove_node_objects(self) -> None:
        # The agents' pod bridges (agent/hostgw/bridge.py), labelled with their node.
        for node in self.node_names:
            for network in self.docker.networks.list(filters={"label": f"pinnace.node={node}"}):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    network.remove()
        # Volumes the agents made for pods and claims (labelled with their node).
        for node in self.node_names:
            for volume in self.docker.volumes.list(filters={"label": f"pinnace.node={node}"}):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    volume.remove(force=True)

    def _remove_volume_files(self) -> None:
        # Claim files the agents loop-mounted: unmounted, their loop devices (found by
        # the file's path, never another's) detached, removed.
        for node in self.node_names:
            disks = ClaimDisks(self.claim_root / node)
            for name in disks.names():
                with contextlib.suppress(DiskError, OSError):
                    disks.remove(name)
            shutil.rmtree(disks.root, ignore_errors=True)
        # Memory emptyDirs' tmpfs mounts (or directories) the agents left, then the folder on
        # /dev/shm with them and the configMap/secret files.
        if self._shm_root is not None:
            for node in self.node_names:
                memory = MemoryVolumes(self.memory_root / node)
                for name in memory.names():
                    with contextlib.suppress(MemoryVolumeError, OSError):
                        memory.remove(name)
            shutil.rmtree(self._shm_root, ignore_errors=True)

    def _stop_proxies(self) -> None:
        # HAProxy outlives its master by design: stop the one this cluster's master left,
        # by the PID in its pid file; and the node proxies its agents left.
        stop_running(self.workdir / "master-data" / "lb")
        for node in self.node_names:
            stop_proxy(self.agent_state_dir(node) / "nodeproxy")
