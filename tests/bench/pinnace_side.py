"""The pinnace side of the bench: one master, one agent, and a timed `apply`.

`PinnaceBench` starts `pinnace master` on 127.0.0.1 port 0 and one agent with
capacity for 30 nginx pods, both logging into the bench's tmp dir (the processes
are tests/bench/procs.py's), and waits for the node to be Ready. A trial
writes a Deployment manifest, runs the real CLI (`apply -f`), and polls the
engine for the node's running containers; the API's view (N pods Running) is
confirmed afterwards. `close` ends both processes by PID and removes every
container labelled with the bench's node name.

The processes read their modules' bytecode from a cache in the tmp dir, compiled before
the first trial, as an installed pinnace does (pip compiles at install): a checkout run
with PYTHONDONTWRITEBYTECODE set (this machine's sessions) would otherwise compile the
CLI's modules from source on every `apply`, ~0.09 s of CPU no user's CLI spends.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from tests.bench.engine import IMAGE, BenchError, Timing, last_start, list_containers, wait_until
from tests.bench.engine_spans import Spans, agent_told, read_spans
from tests.bench.procs import REPO, PinnaceProcs, deployment_manifest

# The packages the CLI, the master and the agent import from the checkout.
PACKAGES = ("master", "agent", "kernel", "protos")


@dataclass(frozen=True, slots=True)
class Phases:
    """Where one trial's time went, in seconds from the ask."""

    apply_cli: float  # the `pinnace apply` process returned
    first_running: float  # the engine listed the first container running
    all_running: float  # ... all N (the poll's clock)
    api_running: float  # `get pods` showed N Running (read after the clock stopped)
    engine_running: float  # the engine's State.StartedAt of the last of the N (wall clock)


class PinnaceBench:
    def __init__(
        self,
        client: docker.DockerClient,
        run_id: str,
        workdir: Path,
        insecure: bool = False,
        source: Path = REPO,
        agent_args: tuple[str, ...] = (),
    ) -> None:
        self.client = client
        # More agent flags (--pod-sandbox: apply_to_running --pod-sandbox).
        self.agent_args = agent_args
        self.workdir = workdir
        self.node = f"bench-{run_id}"
        # TLS as in production (the admin config for the CLI, a join token for the
        # agent); True runs everything with --insecure (tests/bench/tls.py compares).
        self.procs = PinnaceProcs(client, workdir, insecure=insecure, source=source)
        self.procs.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.procs.env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
        self.phases: dict[str, Phases] = {}
        self.spans: dict[str, Spans | None] = {}

    @property
    def address(self) -> str:
        return self.procs.address

    @property
    def insecure(self) -> bool:
        return self.procs.insecure

    @property
    def node_label(self) -> str:
        return f"pinnace.node={self.node}"

    def start(self, timeout: float) -> None:
        compiled = subprocess.run(
            [
                sys.executable,
                "-m",
                "compileall",
                "-q",
                *(str(self.procs.source / p) for p in PACKAGES),
            ],
            env=self.procs.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if compiled.returncode != 0:
            raise BenchError(f"compileall failed: {compiled.stdout.strip()[-500:]}")
        self.procs.start_master()
        capacity = ["--capacity-cpu", "64", "--capacity-memory", "64Gi"]
        self.procs.start_agent(self.node, *capacity, *self.agent_args, log_name="agent")
        self.procs.wait_ready([self.node], timeout)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.procs.cli(*args, check=check)

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

    def _containers(self, name: str, running_only: bool) -> list[dict[str, Any]]:
        """The node's containers belonging to pods of deployment `name`."""
        found = list_containers(self.client, self.node_label, running_only=running_only)
        prefix = f"{name}-"
        return [
            c for c in found if (c.get("Labels") or {}).get("pinnace.pod", "").startswith(prefix)
        ]

    def _count(self, name: str, running_only: bool) -> int:
        return len(self._containers(name, running_only))

    def timed_apply(self, name: str, replicas: int, timeout: float) -> Timing:
        """time_apply on both of the bench's clocks (tests/bench/engine.py's Timing)."""
        seen = self.time_apply(name, replicas, timeout)
        return Timing(seen, self.phases[name].engine_running, self.spans.get(name))

    def time_apply(self, name: str, replicas: int, timeout: float) -> float:
        """Seconds from writing the manifest to N of its containers running on the node."""
        manifest = self.workdir / f"{name}.yaml"
        try:
            start, start_wall = time.monotonic(), time.time()
            manifest.write_text(deployment_manifest(name, replicas, IMAGE))
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
            engine = last_start(self.client, self._containers(name, running_only=True))
            self.spans[name] = self._spans(name, start_wall)
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
            engine_running=engine - start_wall,
        )
        self.delete(name, timeout)
        return end - start

    def _spans(self, name: str, start_wall: float) -> Spans | None:
        """The engine's create/start spans of `name`'s containers and when the agent had
        its pods (tests/bench/engine_spans.py), seconds from the ask."""
        prefix = f"{name}-"
        spans = read_spans(
            self.client,
            start_wall,
            self.node_label,
            lambda attributes: str(attributes.get("pinnace.pod", "")).startswith(prefix),
        )
        if spans is None:
            return None
        lines = self.procs.agent_log(self.node).splitlines()
        return spans._replace(told=agent_told(lines, prefix, start_wall))

    def delete(self, name: str, timeout: float) -> None:
        """Delete the deployment and wait until the agent has removed its containers."""
        self.cli("delete", "deployment", name)
        wait_until(
            f"{name}'s containers gone", lambda: self._count(name, running_only=False) == 0, timeout
        )

    def close(self) -> None:
        self.procs.close()
