"""The pinnace side of the bench: one master, one agent, and a timed `apply`.

`PinnaceBench` starts `pinnace master` on 127.0.0.1 port 0 (its first stdout line
names the bound address) and one agent with capacity for 30 nginx pods, both
logging into the bench's tmp dir, and waits for the node to be Ready. A trial
writes a Deployment manifest, runs the real CLI (`apply -f`), and polls the
engine for the node's running containers; the API's view (N pods Running) is
confirmed afterwards. `close` ends both processes by PID and removes every
container labelled with the bench's node name.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker

from tests.bench.engine import (
    IMAGE,
    BenchError,
    any_count,
    list_containers,
    remove_containers,
    shielded,
    wait_until,
)

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
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
"""


@dataclass(frozen=True, slots=True)
class Phases:
    """Where one trial's time went, in seconds from the ask."""

    apply_cli: float  # the `pinnace apply` process returned
    first_running: float  # the engine listed the first container running
    all_running: float  # ... all N (the measured time)
    api_running: float  # `get pods` showed N Running (read after the clock stopped)


class PinnaceBench:
    def __init__(self, client: docker.DockerClient, run_id: str, workdir: Path) -> None:
        self.client = client
        self.workdir = workdir
        self.node = f"bench-{run_id}"
        self.address = ""
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self.phases: dict[str, Phases] = {}
        # TLS as in production (the admin config for the CLI, a join token for the
        # agent); True runs everything with --insecure (tests/bench/tls.py compares).
        self.insecure = False

    @property
    def node_label(self) -> str:
        return f"pinnace.node={self.node}"

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{log_name}.log").open("ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=log, env=self.env, cwd=REPO
        )
        self._procs.append(proc)
        return proc

    def start(self, timeout: float) -> None:
        master = self._spawn(
            [
                "-m",
                "master.cli.main",
                "master",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(self.workdir / "master-data"),
                *(["--insecure"] if self.insecure else []),
            ],
            "master",
        )
        assert master.stdout is not None
        line = master.stdout.readline().decode()
        if "listening on" not in line:
            raise BenchError(
                f"master did not start (first line {line!r}, exit {master.poll()}); "
                f"see {self.workdir / 'master.log'}"
            )
        self.address = line.strip().rsplit(" ", 1)[-1]
        credentials = ["--insecure"]
        if not self.insecure:
            self.env["PINNACE_CONFIG"] = str(self.workdir / "master-data" / "pinnace.conf")
            token = self.cli("token", "create").stdout.strip()
            credentials = ["--token", token, "--state-dir", str(self.workdir / "agent-state")]
        agent = self._spawn(
            [
                "-m",
                "agent",
                "--master",
                self.address,
                "--name",
                self.node,
                "--advertise-address",
                "127.0.0.1",
                "--capacity-cpu",
                "64",
                "--capacity-memory",
                "64Gi",
                *credentials,
            ],
            "agent",
        )

        def ready() -> bool:
            if agent.poll() is not None:
                raise BenchError(
                    f"agent exited with status {agent.returncode}; see {self.workdir / 'agent.log'}"
                )
            return self._node_ready()

        wait_until(f"node {self.node} Ready", ready, timeout)

    def _node_ready(self) -> bool:
        result = self.cli("get", "nodes", "-o", "json", check=False)
        if result.returncode != 0:
            return False
        for item in json.loads(result.stdout).get("items", []):
            if item.get("metadata", {}).get("name") != self.node:
                continue
            for cond in item.get("status", {}).get("conditions", []):
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    return True
        return False

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "master.cli.main", "--master", self.address),
                *(["--insecure"] if self.insecure else []),
                *args,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise BenchError(f"pinnace {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def _running_pods(self, name: str) -> int:
        result = self.cli("get", "pods", "-o", "json", check=False)
        if result.returncode != 0:
            return -1
        items: list[dict[str, Any]] = json.loads(result.stdout).get("items", [])
        return sum(
            1
            for p in items
            if p.get("metadata", {}).get("name", "").startswith(f"{name}-")
            and p.get("status", {}).get("phase") == "Running"
        )

    def _count(self, name: str, running_only: bool) -> int:
        """The node's containers belonging to pods of deployment `name`."""
        found = list_containers(self.client, self.node_label, running_only=running_only)
        prefix = f"{name}-"
        return sum(
            1 for c in found if (c.get("Labels") or {}).get("pinnace.pod", "").startswith(prefix)
        )

    def time_apply(self, name: str, replicas: int, timeout: float) -> float:
        """Seconds from writing the manifest to N of its containers running on the node."""
        manifest = self.workdir / f"{name}.yaml"
        try:
            start = time.monotonic()
            manifest.write_text(MANIFEST.format(name=name, replicas=replicas, image=IMAGE))
            self.cli("apply", "-f", str(manifest))
            applied = time.monotonic()
            first: list[float] = []

            def all_running() -> bool:
                count = self._count(name, running_only=True)
                if count and not first:
                    first.append(time.monotonic())
                return count >= replicas

            end = wait_until(
                f"{replicas} pinnace containers of {name} running", all_running, timeout
            )
            # The user's view must agree; read after the clock stopped, so it adds nothing.
            seen = wait_until(
                f"`pinnace get pods` showing {replicas} pods of {name} Running",
                lambda: self._running_pods(name) >= replicas,
                timeout,
            )
        except BaseException:
            # The trial's error is the news; close() removes whatever this leaves.
            with contextlib.suppress(BenchError, subprocess.TimeoutExpired):
                self.cli("delete", "deployment", name)
            raise
        self.phases[name] = Phases(
            apply_cli=applied - start,
            first_running=(first[0] if first else end) - start,
            all_running=end - start,
            api_running=seen - start,
        )
        self.delete(name, timeout)
        return end - start

    def delete(self, name: str, timeout: float) -> None:
        """Delete the deployment and wait until the agent has removed its containers."""
        self.cli("delete", "deployment", name)
        wait_until(
            f"{name}'s containers gone", lambda: self._count(name, running_only=False) == 0, timeout
        )

    def close(self) -> None:
        with shielded():
            self._close()

    def _close(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        for log in self._logs:
            log.close()
        if any_count(self.client, self.node_label):
            remove_containers(self.client, self.node_label)
