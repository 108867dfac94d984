"""Docker Swarm's routing mesh on the same engine, for the LB bench's comparison rows.

`MeshSession` is the apply bench's `SwarmSession` (init only when the engine is in no swarm;
leave it, and remove what the leave left behind, also from atexit) plus a service published on
the routing mesh (`--publish published=PORT,target=80`, a free port on 127.0.0.1) and the image
update a Swarm user runs (`docker service update --image`, with Swarm's default update policy:
one task at a time, stop-first). When the mesh does not answer, `mesh_problem` says why, from the
service's task errors and the last connection error.
"""

from __future__ import annotations

import contextlib
import http.client
import sys
import time
from pathlib import Path

import docker
import requests

from tests.bench.engine import (
    IMAGE,
    SWARM_SERVICE_LABEL,
    BenchError,
    SwarmSession,
    docker_cli,
    remove_containers,
    running_count,
    shielded,
    wait_until,
)

# Leaving a swarm tears down the ingress network; on a busy engine that outlasts the SDK's
# default 60 s, and a timed-out leave must not skip the rest of the cleanup.
LEAVE_TIMEOUT = 300


class MeshSession(SwarmSession):
    def create_published(self, name: str, replicas: int, port: int) -> None:
        self._services.add(name)
        docker_cli(
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--replicas",
            str(replicas),
            "--name",
            name,
            "--publish",
            f"published={port},target=80",
            IMAGE,
        )

    def wait_running(self, name: str, replicas: int, timeout: float) -> None:
        label = f"{SWARM_SERVICE_LABEL}={name}"
        try:
            wait_until(
                f"{replicas} tasks of {name} running",
                lambda: running_count(self.client, label) >= replicas,
                timeout,
            )
        except BenchError as e:
            raise BenchError(f"{e}; task errors: {self.task_errors(name)}") from None

    def task_errors(self, name: str) -> str:
        out = docker_cli(
            "service", "ps", "--no-trunc", "--format", "{{.CurrentState}}: {{.Error}}", name
        )
        errors = sorted({line.strip() for line in out.splitlines() if line.strip()})
        return "; ".join(errors) or "none reported"

    def mesh_problem(self, name: str, port: int, timeout: float) -> str | None:
        """None once the mesh answers 200 on 127.0.0.1:PORT; else why it does not."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/")
                status = conn.getresponse().status
                if status == 200:
                    return None
                last = f"status {status}"
            except OSError as e:
                last = f"{type(e).__name__}: {e}"
            finally:
                conn.close()
            time.sleep(0.5)
        reason = (
            f"the routing mesh did not answer on 127.0.0.1:{port} within {timeout:.0f}s "
            f"(last: {last}; tasks: {self.task_errors(name)})"
        )
        # The mesh balances with the kernel's IPVS; without it dockerd only logs "Could not get
        # ipvs family information from the kernel" and the published port never answers.
        if not Path("/proc/net/ip_vs").exists():
            reason += (
                "; this kernel has no IPVS (/proc/net/ip_vs is missing), which the routing mesh "
                "needs to balance published ports"
            )
        return reason

    def close(self) -> None:
        """Like SwarmSession.close, but a slow or failed leave is reported, not raised."""
        with shielded():
            if not self.created:
                return
            self.created = False
            for name in self._services:
                self._remove_service(name)
            api = self.client.api
            old_timeout = api.timeout
            api.timeout = LEAVE_TIMEOUT
            try:
                api.leave_swarm(force=True)
            except (docker.errors.APIError, requests.exceptions.RequestException) as e:
                print(f"swarm: leaving the swarm failed: {e}", file=sys.stderr)
            finally:
                api.timeout = old_timeout
            for name in self._services:
                with contextlib.suppress(docker.errors.APIError):
                    remove_containers(self.client, f"{SWARM_SERVICE_LABEL}={name}")
            if not self._had_gwbridge:
                for net in self.client.networks.list(names=["docker_gwbridge"]):
                    with contextlib.suppress(docker.errors.APIError):
                        net.remove()

    def update_image(self, name: str, image: str, timeout: float) -> float:
        """`docker service update --image`, waiting (the CLI's default) until it converged."""
        start = time.monotonic()
        docker_cli(
            "service",
            "update",
            "--image",
            image,
            "--no-resolve-image",
            "--quiet",
            name,
            timeout=timeout,
        )
        return time.monotonic() - start
