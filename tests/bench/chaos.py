"""Benchmark: random faults against a working cluster, and what each one costs.

Run as root: `python -m tests.bench.chaos [--faults 50] [--seed N] [--replicas 10]`.
One master (fixed port on 127.0.0.1, its data dir on a 64 MiB tmpfs the bench mounts
and unmounts) with its HAProxy, three agents, and a Deployment of `--replicas`
`pinnace/httpd` pods behind a LoadBalancer Service. Two streams run the whole time:
a GET through HAProxy every 50 ms (1 s timeout) and a write every 0.3 s (an
ApplyManifests creating one more zero-replica Deployment, 5 s timeout; the name of
every acknowledged one is kept). Then `--faults` faults, one at a time, drawn at
random from:
  agent-kill9 / agent-term  an agent killed (-9 / SIGTERM) and started again at once
  agent-stop                an agent SIGSTOPped for 4 s, then SIGCONT
  master-kill9 / -term      the master killed and started again on the same data dir
  master-stop               the master SIGSTOPped for 4 s
  container-kill            `docker kill` of one pod's container
  disk-full                 the master's tmpfs filled for 4 s, then freed
  cpu-starve                the master's threads pinned to one CPU with 3 busy loops
                            on it for 5 s
After each fault the bench waits (up to 120 s) until the cluster is whole and stays
whole for 5 s (longer than the lease): every node Ready, exactly `--replicas` pods
ready in the master, exactly that many containers running (each pod once) and the
last request through HAProxy answered; the convergence time ends where that stable
stretch began. Requests and writes are counted from the first time the cluster is
whole. The table
(tests/bench/chaos_report.py) gives per fault kind: requests and writes failed while it
was being healed, pods replaced (no fault kills a machine: every replacement is
needless), duplicates (a pod running twice, or extra containers still running when
it did not converge), convergence time (median and worst, from injection, holds
included); and the acknowledged writes missing at the end. Everything is stopped by
PID, containers removed by label, the tmpfs unmounted, in finally blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import grpc

from protos import cluster_pb2, cluster_pb2_grpc
from tests.bench.chaos_report import FaultResult, Outcome, render, rows
from tests.bench.engine import BenchError, list_containers
from tests.bench.lb_cluster import free_port, pod_ready
from tests.bench.procs import PinnaceProcs, deployment_manifest, node_ready

IMAGE = "pinnace/httpd:latest"
WORKLOAD = "chaos-web"
SERVICE = f"""\
apiVersion: v1
kind: Service
metadata:
  name: {WORKLOAD}
spec:
  selector:
    app: {WORKLOAD}
  ports:
  - port: 80
    targetPort: 80
  type: LoadBalancer
"""
KINDS = (
    "agent-kill9",
    "agent-term",
    "agent-stop",
    "master-kill9",
    "master-term",
    "master-stop",
    "container-kill",
    "disk-full",
    "cpu-starve",
)
HOLD_S = 4.0
CONVERGE_TIMEOUT_S = 120.0
# Whole means whole for this long (more than the 3 s lease): a restarted agent the
# master has not yet missed must not count as healed before its lease could expire.
STABLE_S = 5.0


class Streams:
    """The request stream (through HAProxy) and the write stream (ApplyManifests)."""

    def __init__(self, lb_port: int, address: str) -> None:
        self.lb_port = lb_port
        self.requests: list[Outcome] = []
        self.writes: list[Outcome] = []
        self.acknowledged: list[str] = []
        self._channel = grpc.insecure_channel(address)
        self._stub = cluster_pb2_grpc.ClusterServiceStub(self._channel)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._request_loop, daemon=True),
            threading.Thread(target=self._write_loop, daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def last_request_ok(self) -> bool:
        return bool(self.requests) and self.requests[-1].ok

    def _request_loop(self) -> None:
        while not self._stop.wait(0.05):
            at = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", self.lb_port, timeout=1.0)
            try:
                conn.request("GET", "/")
                ok = conn.getresponse().status == 200
            except OSError:
                ok = False
            finally:
                conn.close()
            self.requests.append(Outcome(at, ok))

    def _write_loop(self) -> None:
        n = 0
        while not self._stop.wait(0.3):
            n += 1
            name = f"w-{n}"
            at = time.monotonic()
            request = cluster_pb2.ApplyManifestsRequest(
                files=[
                    cluster_pb2.SourceFile(
                        name=f"{name}.yaml", content=deployment_manifest(name, 0, IMAGE).encode()
                    )
                ]
            )
            try:
                self._stub.ApplyManifests(request, timeout=5)
                self.acknowledged.append(name)
                ok = True
            except grpc.RpcError:
                ok = False
            self.writes.append(Outcome(at, ok))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self._channel.close()


class Chaos:
    def __init__(self, client: docker.DockerClient, workdir: Path, replicas: int) -> None:
        self.client = client
        self.workdir = workdir
        self.replicas = replicas
        self.run_id = uuid.uuid4().hex[:6]
        self.nodes = [f"chaos-{self.run_id}-n{i}" for i in (1, 2, 3)]
        self.port = free_port()
        self.lb_port = free_port()
        self.data = workdir / "master-data"
        self.mounted = False
        self.procs = PinnaceProcs(client, workdir, insecure=True, cli_timeout=60, grace=15)
        self._channel: grpc.Channel | None = None
        self._stub: cluster_pb2_grpc.ClusterServiceStub | None = None
        self.streams: Streams | None = None
        # Fault kinds whose SIGTERM did not end the process within 20 s.
        self.hangs: list[str] = []

    # -- set-up and tear-down ---------------------------------------------------------

    def start(self) -> None:
        self.data.mkdir()
        if os.geteuid() == 0:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(self.data)],
                check=True,
            )
            self.mounted = True
        self.start_master()
        self._channel = grpc.insecure_channel(self.procs.address)
        self._stub = cluster_pb2_grpc.ClusterServiceStub(self._channel)
        for node in self.nodes:
            self.procs.start_agent(node)
        self.procs.wait_ready(self.nodes, 90)
        workload = self.workdir / "workload.yaml"
        workload.write_text(
            deployment_manifest(WORKLOAD, self.replicas, IMAGE, grace=1) + "---\n" + SERVICE
        )
        self.procs.cli("apply", "-f", str(workload))
        self.streams = Streams(self.lb_port, self.procs.address)
        self.streams.start()
        if self.wait_converged(time.monotonic(), [0])[0] is None:
            raise BenchError(f"the cluster did not come up; see {self.workdir}")
        self.streams.requests.clear()  # count from a whole cluster, not its start-up
        self.streams.writes.clear()

    def start_master(self) -> None:
        for attempt in range(5):
            try:
                self.procs.start_master(
                    *("--listen", f"127.0.0.1:{self.port}"),
                    *("--lb-port-offset", str(self.lb_port - 80)),
                )
                return
            except BenchError:
                if attempt == 4:
                    raise
                time.sleep(1.0)  # the old one's HAProxy may still hold the LB port

    def close(self) -> None:
        if self.streams is not None:
            self.streams.stop()
        if self._channel is not None:
            self._channel.close()
        self.procs.close()
        if self.mounted:
            subprocess.run(["umount", str(self.data)], check=False)

    # -- observation ---------------------------------------------------------------------

    def _objects(self, kind: str) -> list[dict[str, Any]]:
        assert self._stub is not None
        reply = self._stub.GetObjects(cluster_pb2.GetObjectsRequest(kind=kind), timeout=3)
        return [json.loads(o.json) for o in reply.objects]

    def workload_pods(self) -> list[dict[str, Any]]:
        return [p for p in self._objects("Pod") if p["metadata"]["name"].startswith(WORKLOAD)]

    def running(self) -> dict[str, int]:
        """Pod name -> running containers of it, over every node (the engine's view)."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            for c in list_containers(self.client, f"pinnace.node={node}"):
                pod = (c.get("Labels") or {}).get("pinnace.pod", "")
                if pod.startswith(WORKLOAD):
                    counts[pod] = counts.get(pod, 0) + 1
        return counts

    def wait_converged(self, since: float, duplicates: list[int]) -> tuple[float | None, set[str]]:
        """(seconds from `since` until whole, or None) and the workload's pods then (all the
        master lists, ready or not); the most pods seen running twice go to `duplicates`."""
        assert self.streams is not None
        deadline = since + CONVERGE_TIMEOUT_S
        pods: set[str] = set()
        counts: dict[str, int] = {}
        whole_since: float | None = None
        while time.monotonic() < deadline:
            counts = self.running()
            duplicates[0] = max(duplicates[0], sum(n - 1 for n in counts.values() if n > 1))
            try:
                nodes = self._objects("Node")
                listed = self.workload_pods()
            except grpc.RpcError:
                whole_since = None
                time.sleep(0.25)
                continue
            ready = [
                p["metadata"]["name"] for p in listed if pod_ready(p) and p["spec"].get("nodeName")
            ]
            pods = {p["metadata"]["name"] for p in listed}
            if (
                sum(node_ready(n) for n in nodes if n["metadata"]["name"] in self.nodes) == 3
                and len(listed) == self.replicas
                and len(ready) == self.replicas
                and set(counts) == set(ready)
                and all(n == 1 for n in counts.values())
                and self.streams.last_request_ok()
            ):
                now = time.monotonic()
                whole_since = now if whole_since is None else whole_since
                if now - whole_since >= STABLE_S:
                    return whole_since - since, pods
            else:
                whole_since = None
            time.sleep(0.25)
        duplicates[0] += max(0, sum(counts.values()) - self.replicas)
        return None, pods

    # -- faults ----------------------------------------------------------------------------

    def inject(self, kind: str, rng: random.Random) -> None:
        node = rng.choice(self.nodes)
        master = self.procs.master
        assert master is not None
        if kind in ("agent-kill9", "agent-term"):
            self._end(self.procs.agents[node], kind)
            self.procs.start_agent(node)
        elif kind == "agent-stop":
            self._hold(self.procs.agents[node])
        elif kind in ("master-kill9", "master-term"):
            self._end(master, kind)
            self.start_master()
        elif kind == "master-stop":
            self._hold(master)
        elif kind == "container-kill":
            containers = [
                c
                for n in self.nodes
                for c in list_containers(self.client, f"pinnace.node={n}")
                if (c.get("Labels") or {}).get("pinnace.pod", "").startswith(WORKLOAD)
            ]
            if containers:
                with contextlib.suppress(docker.errors.APIError):
                    self.client.api.kill(rng.choice(containers)["Id"])
        elif kind == "disk-full":
            self._fill_disk()
        elif kind == "cpu-starve":
            self._starve(master.pid)

    def _end(self, proc: subprocess.Popen[bytes], kind: str) -> None:
        """kill -9, or SIGTERM with 20 s to exit (then kill -9, counted as a hang)."""
        try:
            self.procs.kill(proc, signal.SIGKILL if kind.endswith("kill9") else signal.SIGTERM)
        except subprocess.TimeoutExpired:
            self.hangs.append(kind)
            print(f"  {kind}: the process did not exit within 20 s of SIGTERM", flush=True)
            proc.kill()
            proc.wait(timeout=10)

    @staticmethod
    def _hold(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(HOLD_S)  # the fault is the pause itself
        finally:
            proc.send_signal(signal.SIGCONT)

    def _fill_disk(self) -> None:
        filler = self.data / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * (1 << 20))
            time.sleep(HOLD_S)  # the fault is the full disk, held
        finally:
            os.close(fd)
            filler.unlink()

    def _starve(self, pid: int) -> None:
        tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        every = os.sched_getaffinity(pid)
        burners = [
            subprocess.Popen(
                [sys.executable, "-c", "import os\nos.sched_setaffinity(0, {0})\nwhile True: pass"]
            )
            for _ in range(3)
        ]
        try:
            for tid in tasks:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(tid, {0})
            time.sleep(5.0)  # the fault is the starvation, held
        finally:
            for b in burners:
                b.kill()
                b.wait(timeout=10)
            for tid in tasks:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(tid, every)

    # -- the run ---------------------------------------------------------------------------

    def run(self, faults: int, rng: random.Random) -> tuple[list[FaultResult], list[str]]:
        kinds = [k for k in KINDS if k != "disk-full" or self.mounted]
        results = []
        for i in range(faults):
            kind = rng.choice(kinds)
            try:
                before = {p["metadata"]["name"] for p in self.workload_pods()}
            except grpc.RpcError:
                before = set()  # the last fault left the master unreachable: nothing to compare
            at = time.monotonic()
            self.inject(kind, rng)
            duplicates = [0]
            converge, after = self.wait_converged(at, duplicates)
            replaced = len(before - after)
            results.append(FaultResult(kind, at, converge, replaced, duplicates[0]))
            shown = "did not converge" if converge is None else f"{converge:.1f} s"
            print(
                f"fault {i + 1:2}/{faults} {kind:14} {shown}, replaced {replaced}, "
                f"duplicates {duplicates[0]}",
                flush=True,
            )
            time.sleep(rng.uniform(1.0, 3.0))
        assert self.streams is not None
        self.streams.stop()
        present = {d["metadata"]["name"] for d in self._objects("Deployment")}
        lost = [n for n in self.streams.acknowledged if n not in present]
        return results, lost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the tmp dir (logs)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-chaos-"))
    client = docker.from_env()
    chaos = Chaos(client, workdir, args.replicas)
    try:
        chaos.start()
        results, lost = chaos.run(args.faults, rng)
        assert chaos.streams is not None
        print(f"\nchaos: {args.faults} faults, seed {seed}, {args.replicas} replicas, 3 agents")
        table = rows(results, chaos.streams.requests, chaos.streams.writes)
        print(render(table, len(chaos.streams.acknowledged), lost))
        print(f"SIGTERMs that did not stop their process within 20 s: {len(chaos.hangs)}")
        return 0
    except BenchError as e:
        print(f"chaos: {e}", file=sys.stderr)
        return 1
    finally:
        chaos.close()
        client.close()
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
