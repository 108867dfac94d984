"""The compose cluster (compose/docker-compose.yml) as a test drives it: its own copy.

`ComposeCluster` runs the demo's compose file under a project name of its own, with
free host ports, its own network name and node names prefixed with the project's id,
so it never collides with a running `make demo` or another test run. `start()` does
what compose/demo.sh does: the master first, its admin credentials copied out of its
volume for the host's CLI (TLS), a join token, then the agents with that token. It
drives the CLI against the published API port, talks to the load balancer's published
port, and `down()` removes every container (the pods too, found by their node
labels and by the network), the network and the volume; `leftovers()` lists what
would remain, so a test can assert that nothing does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from tests.integration.cluster import REPO

COMPOSE_FILE = REPO / "compose" / "docker-compose.yml"
HOSTNAME = re.compile(r'id="hostname">([^<]+)<')


def compose_command() -> list[str] | None:
    """`docker compose` (v2) where it works, else docker-compose (v1), else None."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Response:
    status: int  # 0: no HTTP answer at all (refused, reset, timed out)
    hostname: str
    seconds: float


class ComposeCluster:
    def __init__(
        self, compose: list[str], docker_client: docker.DockerClient, workdir: Path
    ) -> None:
        self.id = uuid.uuid4().hex[:6]
        self.project = f"pinnace-e2e-{self.id}"
        self.docker = docker_client
        self._compose = compose
        self.api_port = free_port()
        self.kube_port = free_port()
        self.lb_port = free_port()
        self.ingress_port = free_port()
        self.nodes = [f"e2e{self.id}-node-{i}" for i in (1, 2, 3)]
        self.config = workdir / "pinnace.conf"
        self.env = {
            **os.environ,
            "PINNACE_API_PORT": str(self.api_port),
            "PINNACE_KUBE_PORT": str(self.kube_port),
            "PINNACE_LB_PORT": str(self.lb_port),
            "PINNACE_INGRESS_PORT": str(self.ingress_port),
            "PINNACE_BIND": "127.0.0.1",
            "PINNACE_NETWORK": self.project,
            "PINNACE_NODE_PREFIX": f"e2e{self.id}-",
        }

    # -- compose ------------------------------------------------------------------------

    def compose(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [*self._compose, "-p", self.project, "-f", str(COMPOSE_FILE), *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=REPO,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self) -> None:
        """Master, credentials, join token, agents; returns once the master's API answers."""
        self.compose("up", "-d", "master")
        master = self.container_of("master")
        deadline = time.monotonic() + 60
        while not self._fetch_config(master):
            if time.monotonic() > deadline:
                raise AssertionError(f"the master wrote no pinnace.conf:\n{self.logs()}")
            time.sleep(0.5)
        while not self.api_answers():
            if time.monotonic() > deadline:
                raise AssertionError(f"the master's API never answered:\n{self.logs()}")
            time.sleep(0.5)
        token = self.cli("token", "create", "--ttl", "1h", "--description", "e2e").strip()
        self.env["PINNACE_TOKEN"] = token
        self.compose("up", "-d")

    def _fetch_config(self, master: str) -> bool:
        with contextlib.suppress(docker.errors.NotFound):
            chunks, _ = self.docker.api.get_archive(master, "/var/lib/pinnace/pinnace.conf")
            with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
                member = tar.extractfile("pinnace.conf")
                if member is not None:
                    self.config.write_bytes(member.read())
                    return True
        return False

    def container_of(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def logs(self) -> str:
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            return self.compose("logs", "--no-color", "--tail", "60", timeout=60)[-12000:]
        return "(no logs)"

    # -- the CLI and the load balancer ----------------------------------------------------

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "master.cli.main",
                "--master",
                f"127.0.0.1:{self.api_port}",
                "--config",
                str(self.config),
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"pinnace {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def api_answers(self) -> bool:
        try:
            self.cli("get", "nodes")
        except AssertionError:
            return False
        return True

    def items(self, kind: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.cli("get", kind, "-o", "json"))["items"]
        return found

    def ready_nodes(self) -> set[str]:
        return {
            n["metadata"]["name"]
            for n in self.items("nodes")
            for c in n["status"]["conditions"]
            if c["type"] == "Ready" and c["status"] == "True"
        }

    def serving_pods(self) -> dict[str, str]:
        """Running and ready pods -> their node."""
        return {
            p["metadata"]["name"]: p["spec"].get("nodeName", "")
            for p in self.items("pods")
            if p["status"]["phase"] == "Running"
            and p["status"].get("containerStatuses")
            and all(c["ready"] for c in p["status"]["containerStatuses"])
        }

    def pod_containers(self) -> dict[str, str]:
        """Pod name -> full id of its running container, for this cluster's nodes (not its
        pod sandbox's holder, which carries the label pinnace.sandbox)."""
        found: dict[str, str] = {}
        for node in self.nodes:
            for c in self.docker.api.containers(filters={"label": f"pinnace.node={node}"}):
                if "pinnace.sandbox" not in c["Labels"]:
                    found[c["Labels"]["pinnace.pod"]] = c["Id"]
        return found

    def get(self, timeout: float = 10.0) -> Response:
        """One request to the load balancer; its status and the nginx hostname it names."""
        url = f"http://127.0.0.1:{self.lb_port}/"
        start = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                body = answer.read().decode(errors="replace")
                status = int(answer.status)
        except urllib.error.HTTPError as e:
            return Response(e.code, "", time.monotonic() - start)
        except (OSError, urllib.error.URLError):
            return Response(0, "", time.monotonic() - start)
        match = HOSTNAME.search(body)
        return Response(status, match.group(1) if match else "", time.monotonic() - start)

    # -- teardown -------------------------------------------------------------------------

    def pod_container_ids(self) -> set[str]:
        ids = {
            c["Id"]
            for node in self.nodes
            for c in self.docker.api.containers(all=True, filters={"label": f"pinnace.node={node}"})
        }
        ids |= {
            c["Id"]
            for c in self.docker.api.containers(all=True, filters={"network": self.project})
            if c["Labels"].get("com.docker.compose.project") != self.project
        }
        return ids

    def down(self) -> None:
        # The agents stop first, so nothing recreates a pod between its removal and the end.
        with contextlib.suppress(AssertionError, subprocess.SubprocessError):
            self.compose("stop", "-t", "5")
        for cid in self.pod_container_ids():
            with contextlib.suppress(docker.errors.NotFound):
                self.docker.api.remove_container(cid, force=True)
        self.compose("down", "-v", "--remove-orphans", "-t", "5")

    def leftovers(self) -> list[str]:
        """Whatever of this project is still in the engine, described."""
        label = {"label": f"com.docker.compose.project={self.project}"}
        left = [
            f"container {c['Names'][0]}"
            for c in self.docker.api.containers(all=True, filters=label)
        ]
        left += [f"pod container {cid[:12]}" for cid in self.pod_container_ids()]
        left += [
            f"network {n['Name']}"
            for n in self.docker.api.networks()
            if n["Name"] == self.project
            or (n.get("Labels") or {}).get("com.docker.compose.project") == self.project
        ]
        volumes = self.docker.api.volumes().get("Volumes") or []
        left += [
            f"volume {v['Name']}"
            for v in volumes
            if v["Name"].startswith(f"{self.project}_")
            or (v.get("Labels") or {}).get("com.docker.compose.project") == self.project
        ]
        return left
