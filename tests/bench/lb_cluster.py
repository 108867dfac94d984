"""The pinnace side of the LB bench: a master with HAProxy, two agents, and a watch on pods.

`LbCluster` starts `pinnace master` on 127.0.0.1 port 0 with `--lb-port-offset` chosen so the
seed service's port 80 lands on a free port, and two agents (nodes `lb-<run>-n1`, `-n2`)
publishing pods on 127.0.0.1 (the processes are tests/bench/procs.py's); all plaintext on
loopback (`--insecure`): TLS is not on the load balancer's data path, which is what is measured.
`PodWatch` follows the master's pod stream (the WatchObjects RPC, the one `pinnace get pods -w`
uses) in a thread and stamps, per pod, when the master first showed it ready (Running, every
container ready, not being deleted) and when its removal began (deletionTimestamp set, or the
pod deleted). Scaling goes through the ScaleDeployment RPC so the timestamp taken before it is
the request itself, not a CLI process starting up; everything else a user does goes through the
real CLI. `close` ends the processes by PID and removes every container labelled with one of the
bench's node names.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import grpc

from protos import cluster_pb2, cluster_pb2_grpc
from tests.bench.engine import BenchError, list_containers, remove_containers, shielded, wait_until
from tests.bench.lb_load import HOSTNAME
from tests.bench.procs import PinnaceProcs

DEPLOYMENT = "my-web-app-deployment"
SERVICE_PORT = 80


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pod_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status", {})
    containers = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running"
        and not obj.get("metadata", {}).get("deletionTimestamp")
        and bool(containers)
        and all(c.get("ready") for c in containers)
    )


class PodWatch:
    """A thread following the master's pod stream; per-pod monotonic timestamps."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = cluster_pb2_grpc.ClusterServiceStub(self._channel)
        self._lock = threading.Lock()
        self.pods: dict[str, dict[str, Any]] = {}
        self.added_at: dict[str, float] = {}
        self.ready_at: dict[str, float] = {}
        self.removing_at: dict[str, float] = {}
        self.deleted_at: dict[str, float] = {}
        self._stream: Any = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                # resource_version 0: the current pods first, then every change.
                self._stream = self._stub.WatchObjects(
                    cluster_pb2.WatchObjectsRequest(kind="Pod", resource_version=0)
                )
                for change in self._stream:
                    self._record(change.type, json.loads(change.object.json), time.monotonic())
            except grpc.RpcError:
                if self._closed.is_set():
                    return
                time.sleep(0.2)  # the master restarted or dropped a slow watcher: re-list

    def _record(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            self.added_at.setdefault(name, now)
            if kind == "DELETED":
                self.pods.pop(name, None)
                self.deleted_at.setdefault(name, now)
                self.removing_at.setdefault(name, now)
                return
            self.pods[name] = obj
            if obj["metadata"].get("deletionTimestamp"):
                self.removing_at.setdefault(name, now)
            elif pod_ready(obj):
                self.ready_at.setdefault(name, now)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.pods.values())

    def ready_pods(self, image: str | None = None) -> list[dict[str, Any]]:
        return [
            p
            for p in self.snapshot()
            if pod_ready(p) and (image is None or p["spec"]["containers"][0]["image"] == image)
        ]

    def close(self) -> None:
        self._closed.set()
        if self._stream is not None:
            self._stream.cancel()
        self._thread.join(timeout=5)
        self._channel.close()


class LbCluster:
    def __init__(
        self, client: docker.DockerClient, run_id: str, workdir: Path, source: Path | None = None
    ) -> None:
        """`source`: another pinnace tree to run master and agents from (lb.py --compare)."""
        self.client = client
        self.workdir = workdir
        self.run_id = run_id
        self.lb_port = free_port()
        self.node_names = [f"lb-{run_id}-n1", f"lb-{run_id}-n2"]
        # The master last and slowly: it stops HAProxy on SIGTERM (HAProxy also dies with
        # it on kill -9).
        self.procs = PinnaceProcs(
            client,
            workdir,
            insecure=True,
            cli_timeout=150,
            grace=15,
            **({"source": source} if source is not None else {}),
        )
        self.watch: PodWatch | None = None
        self._channel: grpc.Channel | None = None
        self._closed = False

    @property
    def address(self) -> str:
        return self.procs.address

    @property
    def agents(self) -> dict[str, subprocess.Popen[bytes]]:
        return self.procs.agents

    def start(self, timeout: float) -> None:
        self.procs.start_master("--lb-port-offset", str(self.lb_port - SERVICE_PORT))
        self._channel = grpc.insecure_channel(self.address)
        for node in self.node_names:
            self.procs.start_agent(node)
        self.watch = PodWatch(self.address)
        self.watch.start()
        self.procs.wait_ready(self.node_names, timeout)

    @property
    def pod_watch(self) -> PodWatch:
        assert self.watch is not None, "start() first"
        return self.watch

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.procs.cli(*args, check=check)

    def scale(self, replicas: int) -> float:
        """Scale the seed deployment through the RPC; the monotonic time just before the ask."""
        assert self._channel is not None
        stub = cluster_pb2_grpc.ClusterServiceStub(self._channel)
        asked = time.monotonic()
        stub.ScaleDeployment(
            cluster_pb2.ScaleDeploymentRequest(name=DEPLOYMENT, replicas=replicas), timeout=30
        )
        return asked

    def wait_ready(self, n: int, timeout: float, image: str | None = None) -> list[dict[str, Any]]:
        """Until exactly n pods exist and all n are ready (with `image`, if given)."""
        found: list[list[dict[str, Any]]] = []

        def check() -> bool:
            ready = self.pod_watch.ready_pods(image)
            found[:] = [ready]
            return len(ready) == n and len(self.pod_watch.snapshot()) == n

        wait_until(f"{n} ready pods" + (f" of {image}" if image else ""), check, timeout)
        return found[0]

    def containers(self) -> list[dict[str, Any]]:
        """The running app containers of the bench's nodes (the engine's list, one call per
        node; not the pods' sandbox holders, labelled pinnace.sandbox)."""
        found: list[dict[str, Any]] = []
        for node in self.node_names:
            found += list_containers(self.client, f"pinnace.node={node}")
        return [c for c in found if "pinnace.sandbox" not in (c.get("Labels") or {})]

    def hosts_by_pod(self) -> dict[str, str]:
        """Pod name -> its container's hostname (nginx prints it): the pod's name."""
        return {name: name for c in self.containers() if (name := _pod_name(c))}

    def wait_lb_serves(self, timeout: float) -> None:
        """Until every running pod has answered through HAProxy (the LB is programmed)."""
        seen: set[str] = set()
        last = ""

        def check() -> bool:
            nonlocal last
            for _ in range(6):
                conn = http.client.HTTPConnection("127.0.0.1", self.lb_port, timeout=2)
                try:
                    conn.request("GET", "/")
                    resp = conn.getresponse()
                    match = HOSTNAME.search(resp.read())
                    if resp.status == 200 and match:
                        seen.add(match.group(1).decode())
                    last = f"status {resp.status}"
                except OSError as e:
                    last = f"{type(e).__name__}: {e}"
                finally:
                    conn.close()
            return seen >= set(self.hosts_by_pod().values())

        try:
            wait_until("every pod to answer through HAProxy", check, timeout)
        except BenchError as e:
            raise BenchError(
                f"{e} (answered: {len(seen)}; last: {last}; see {self.workdir / 'master.log'})"
            ) from None

    def pod_gone(self, pod: str) -> Callable[[], bool]:
        def check() -> bool:
            return not any(
                (c.get("Labels") or {}).get("pinnace.pod") == pod
                for node in self.node_names
                for c in list_containers(self.client, f"pinnace.node={node}", running_only=False)
            )

        return check

    def kill_node(self, node: str) -> None:
        """Node death: kill -9 its agent, then remove its containers (the machine is gone)."""
        self.procs.kill(self.agents[node])
        remove_containers(self.client, f"pinnace.node={node}")

    def close(self) -> None:
        with shielded():
            if not self._closed:
                self._closed = True
                self._close()

    def _close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        if self._channel is not None:
            self._channel.close()
        self.procs.close()


def _pod_name(container: dict[str, Any]) -> str:
    return str((container.get("Labels") or {}).get("pinnace.pod", ""))
