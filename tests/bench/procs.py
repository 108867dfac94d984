"""Pinnace as the benches run it: a master and agents as subprocesses on 127.0.0.1, and the CLI.

`PinnaceProcs` starts each process as `python -m ...` from the repo root (or `source`,
another checkout, whose packages then come first on the path), its stderr
appended to `<workdir>/<log name>.log` and its stdout piped: the master listens on
port 0 and its first line ("... listening on HOST:PORT") is how the address is learnt.
Security is as in production unless `insecure`: the master writes its admin config,
which `env` hands to every CLI call through PINNACE_CONFIG, and agents join with a
token made once through the CLI (`token create`), keeping their certificates in
`<workdir>/agent-state/<node>`. With `insecure` the master, the agents and the CLI all
get `--insecure`.

State: the processes in start order (the master first, `agents` by node name) and
every node name ever started. `close` ends each process by PID, newest first so the
master goes last: SIGCONT (a bench may have stopped it), SIGTERM, SIGKILL after
`grace` seconds; then it stops the HAProxy the master left serving (by the PID in
`master-data/lb/haproxy.pid`) and removes every container labelled with one of
those node names. Errors are `BenchError`, naming the log to read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import docker

from agent.memory_volumes import DEFAULT_ROOT as MEMORY_ROOT
from agent.memory_volumes import MemoryVolumeError, MemoryVolumes
from agent.nodeproxy.proxy import stop_proxy
from master.lb.process import stop_running
from tests.bench.engine import BenchError, remove_containers, shielded, wait_until
from tests.integration.cluster import NO_INGRESS, asks_ingress
from tests.support import env_with_haproxy

REPO = Path(__file__).resolve().parents[2]

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
{grace}      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
"""


def deployment_manifest(name: str, replicas: int, image: str, grace: int | None = None) -> str:
    """A Deployment of `replicas` pods of `image` serving port 80, labelled app=<name>."""
    line = "" if grace is None else f"      terminationGracePeriodSeconds: {grace}\n"
    return MANIFEST.format(name=name, replicas=replicas, image=image, grace=line)


def node_ready(item: dict[str, Any]) -> bool:
    """A node object from `get nodes -o json` whose Ready condition is True."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in item.get("status", {}).get("conditions", [])
    )


class PinnaceProcs:
    def __init__(
        self,
        client: docker.DockerClient,
        workdir: Path,
        *,
        insecure: bool = False,
        cli_timeout: float = 60.0,
        grace: float = 10.0,
        source: Path = REPO,
    ) -> None:
        self.client = client
        self.workdir = workdir
        # The pinnace tree the processes run (another checkout for a before/after figure).
        self.source = source
        self.insecure = insecure
        self.cli_timeout = cli_timeout
        self.grace = grace
        self.env = env_with_haproxy(
            {**os.environ, "PYTHONUNBUFFERED": "1", "PINNACE_METRICS_LISTEN": ""}
        )
        self.address = ""
        self.master: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self._agent_logs: dict[str, str] = {}
        self.node_names: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._token = ""
        self._closed = False

    def log_path(self, log_name: str) -> Path:
        return self.workdir / f"{log_name}.log"

    def agent_log(self, name: str) -> str:
        """What agent `name` has logged so far."""
        return self.log_path(self._agent_logs[name]).read_text(errors="replace")

    def spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        """`python <args>` from `source`, stderr into its log, stdout piped."""
        log = self.log_path(log_name).open("ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stderr=log,
            env=self.env,
            cwd=self.source,
        )
        self._procs.append(proc)
        return proc

    def _insecure_flag(self) -> list[str]:
        return ["--insecure"] if self.insecure else []

    def start_master(self, *extra: str, port: int = 0) -> str:
        """Start the master on 127.0.0.1 (`port`, default 0: any; data in
        <workdir>/master-data); its address. A restart passes the port agents know."""
        proc = self.spawn(
            [
                *("-m", "master.cli.main", "master", "--listen", f"127.0.0.1:{port}"),
                *("--api-listen", "127.0.0.1:0"),
                *("--data-dir", str(self.workdir / "master-data")),
                *([] if asks_ingress(extra) else NO_INGRESS),
                *extra,
                *self._insecure_flag(),
            ],
            "master",
        )
        self.master = proc
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "listening on" not in line:
            raise BenchError(
                f"master did not start (first line {line!r}, exit {proc.poll()}); "
                f"see {self.log_path('master')}"
            )
        self.address = line.strip().rsplit(" ", 1)[-1]
        if not self.insecure:
            self.env["PINNACE_CONFIG"] = str(self.workdir / "master-data" / "pinnace.conf")
        return self.address

    def join_token(self) -> str:
        """A join token for this cluster (made once, through the CLI)."""
        if not self._token:
            self._token = self.cli("token", "create").stdout.strip()
        return self._token

    def start_agent(
        self, name: str, *extra: str, log_name: str = "", node_proxy: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start an agent for node `name`, advertising 127.0.0.1; logs to agent-<name>.log.
        A node proxy outlives its agent: only benches that measure it ask for one (close()
        stops it by PID)."""
        if self.insecure:
            credentials = ["--insecure"]
        else:
            state = self.workdir / "agent-state" / name
            credentials = ["--token", self.join_token(), "--state-dir", str(state)]
        proc = self.spawn(
            [
                *("-m", "agent", "--master", self.address, "--name", name),
                *("--advertise-address", "127.0.0.1"),
                *([] if node_proxy else ["--no-node-proxy"]),
                # No dnsmasq per bench agent unless a bench asks (it would outlive a kill).
                *(
                    []
                    if any(a.startswith("--cluster-dns") for a in extra)
                    else ["--cluster-dns=none"]
                ),
                *extra,
                *credentials,
            ],
            log_name or f"agent-{name}",
        )
        self.agents[name] = proc
        self._agent_logs[name] = log_name or f"agent-{name}"
        if name not in self.node_names:
            self.node_names.append(name)
        return proc

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real CLI against this master; BenchError on a non-zero exit when `check`."""
        result = subprocess.run(
            [
                *(sys.executable, "-m", "master.cli.main", "--master", self.address),
                *self._insecure_flag(),
                *args,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.source,
            timeout=self.cli_timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise BenchError(f"pinnace {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def get_json(self, kind: str) -> Any:
        return json.loads(self.cli("get", kind, "-o", "json").stdout)

    def ready_nodes(self) -> set[str]:
        return {n["metadata"]["name"] for n in self.get_json("nodes")["items"] if node_ready(n)}

    def wait_ready(self, names: Iterable[str], timeout: float) -> None:
        """Until every named node is Ready; BenchError at once if one of their agents exits."""
        wanted = set(names)

        def ready() -> bool:
            for name in wanted:
                proc = self.agents[name]
                if proc.poll() is not None:
                    raise BenchError(
                        f"agent {name} exited with status {proc.returncode}; "
                        f"see {self.log_path(self._agent_logs[name])}"
                    )
            return wanted <= self.ready_nodes()

        what = ("node " if len(wanted) == 1 else "nodes ") + ", ".join(sorted(wanted))
        wait_until(f"{what} Ready", ready, timeout)

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one of our processes; wait for it when the signal ends it."""
        if proc.poll() is None:
            proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                proc.wait(timeout=20)

    def close(self) -> None:
        with shielded():
            if not self._closed:
                self._closed = True
                self._close()

    def _close(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(timeout=self.grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        for log in self._logs:
            log.close()
        # HAProxy outlives its master by design (and node proxies their agents); a bench
        # leaves none behind.
        stop_running(self.workdir / "master-data" / "lb")
        for node in self.node_names:
            stop_proxy(self.workdir / "agent-state" / node / "nodeproxy")
        for node in self.node_names:
            with contextlib.suppress(docker.errors.APIError):
                remove_containers(self.client, f"pinnace.node={node}")
        # The agents' volume collector removes an emptyDir only some time after its pod is
        # gone, and the agents are stopped by now: their emptyDirs go here. (Claims are left
        # to their benches, which unmount and detach their files.)
        for node in self.node_names:
            labels = [f"pinnace.node={node}", "pinnace.volume-kind=emptyDir"]
            with contextlib.suppress(docker.errors.APIError):
                for volume in self.client.volumes.list(filters={"label": labels}):
                    volume.remove(force=True)
            # Memory emptyDirs' tmpfs mounts (or directories) under their node's directory.
            memory = MemoryVolumes(Path(MEMORY_ROOT) / node)
            for name in memory.names():
                with contextlib.suppress(MemoryVolumeError, OSError):
                    memory.remove(name)
            shutil.rmtree(memory.root, ignore_errors=True)
