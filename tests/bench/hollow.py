"""Hollow nodes: how much CPU the master spends carrying many agents and pods.

Starts a real master (`--no-lb`, so only the control plane is measured), then
N hollow agents in this one process: each registers over gRPC, holds a real
session stream, heartbeats every second and reports every assigned pod Running
and ready at once (no containers). Applies a deployment of P pods, waits until
all are Running, then samples the master process's CPU time over a window of
steady state (heartbeats only) and prints a table.

    python -m tests.bench.hollow --nodes 1000 --pods 10000 --window 30

The target (issue 2's design note): 1,000 agents heartbeating every second and
10,000 pods with the master under a third of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil

from protos import node_pb2, node_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


class HollowAgent:
    def __init__(self, channel: grpc.aio.Channel, name: str) -> None:
        self.stub = node_pb2_grpc.NodeServiceStub(channel)
        self.name = name
        self.pods: dict[str, int] = {}
        self.reported: set[tuple[str, int]] = set()
        self.outbox: asyncio.Queue[node_pb2.AgentMessage] = asyncio.Queue()
        self.acks = 0
        # Heartbeat round trips (sent -> its ack) while `timing` is set (store_compare.py).
        self.timing = False
        self.rtts: list[float] = []
        self._sent: dict[int, float] = {}
        # Why the session ended ("" while it runs): hollow agents do not reconnect.
        self.ended = ""
        self.stage = "new"

    async def run(self, stop: asyncio.Event) -> None:
        info = node_pb2.NodeInfo(
            name=self.name,
            address="127.0.0.1",
            capacity=node_pb2.Resources(cpu_millis=32000, memory_bytes=64 * 2**30),
            allocatable=node_pb2.Resources(cpu_millis=32000, memory_bytes=64 * 2**30),
            agent_version="hollow",
        )
        self.stage = "registering"
        try:
            reply = await self.stub.RegisterNode(node_pb2.RegisterNodeRequest(node=info))
        except grpc.aio.AioRpcError as exc:
            self.ended = f"RegisterNode: {exc.code().name}: {exc.details()}"[:120]
            return
        self.stage = "registered"
        hello = node_pb2.SessionHello(node_name=self.name, session_id=reply.session_id)
        await self.outbox.put(node_pb2.AgentMessage(hello=hello))
        call = self.stub.StreamSession(self._messages(stop))
        beat = asyncio.create_task(self._heartbeat(stop, reply.heartbeat_interval_seconds))
        try:
            async for msg in call:
                body = msg.WhichOneof("body")
                if body == "assignments":
                    await self._report(msg.assignments)
                elif body == "heartbeat_ack":
                    self.acks += 1
                    sent = self._sent.pop(msg.heartbeat_ack.sequence, None)
                    if sent is not None and self.timing:
                        self.rtts.append(time.monotonic() - sent)
        except grpc.aio.AioRpcError as exc:
            self.ended = f"{exc.code().name}: {exc.details()}"[:120]
        else:
            self.ended = "stream closed by the master"
        finally:
            beat.cancel()

    async def _messages(self, stop: asyncio.Event):  # type: ignore[no-untyped-def]
        while not stop.is_set():
            yield await self.outbox.get()

    async def _heartbeat(self, stop: asyncio.Event, interval: float) -> None:
        seq = 0
        # Spread the beats over the interval, as real agents started at random times are.
        await asyncio.sleep(hash(self.name) % 1000 / 1000 * interval)
        while not stop.is_set():
            seq += 1
            self._sent[seq] = time.monotonic()
            await self.outbox.put(node_pb2.AgentMessage(heartbeat=node_pb2.Heartbeat(sequence=seq)))
            await asyncio.sleep(interval)

    async def _report(self, assignments: node_pb2.PodAssignments) -> None:
        reports = []
        for pod in assignments.pods:
            key = (pod.name, pod.epoch)
            if key in self.reported:
                continue
            self.reported.add(key)
            reports.append(
                node_pb2.PodStatusReport(
                    pod_name=pod.name,
                    epoch=pod.epoch,
                    phase="Succeeded" if pod.stop else "Running",
                    host_ip="127.0.0.1",
                    port_map={"80/TCP": 30000},
                    ready=not pod.stop,
                    removed=pod.stop,
                    started_at=time.time(),
                    containers=[
                        node_pb2.ContainerStatusReport(
                            name=c.name, state="running", ready=True, image=c.image
                        )
                        for c in pod.spec.containers
                    ],
                )
            )
        if reports:
            await self.outbox.put(
                node_pb2.AgentMessage(statuses=node_pb2.PodStatusBatch(pods=reports))
            )


def cli(address: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "master.cli.main", "--insecure", "--master", address, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return out.stdout


def ready_nodes(address: str) -> int:
    items = json.loads(cli(address, "get", "nodes", "-o", "json"))["items"]
    return sum(
        1
        for n in items
        for c in n["status"]["conditions"]
        if c["type"] == "Ready" and c["status"] == "True"
    )


def event_reasons(address: str) -> Counter[str]:
    items = json.loads(cli(address, "get", "events", "-o", "json"))["items"]
    return Counter(str(e.get("reason", "")) for e in items)


def running_pods(address: str) -> int:
    items = json.loads(cli(address, "get", "pods", "-o", "json"))["items"]
    return sum(1 for p in items if p["status"].get("phase") == "Running")


@dataclass(frozen=True, slots=True)
class HollowResult:
    nodes: int
    pods: int
    converge_s: float
    cpu_cores: float
    rss_mib: float
    acks_per_s: float
    ready: int


async def main_async(
    nodes: int,
    pods: int,
    window: float,
    per_channel: int = 10,
    source: Path | None = None,
    timeout: float = 600.0,
) -> HollowResult | None:
    data = tempfile.mkdtemp(prefix="pinnace-hollow-")
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "master.cli.main",
            "master",
            "--listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--no-lb",
            "--insecure",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        cwd=source or REPO,
    )
    assert master.stdout is not None
    address = master.stdout.readline().decode().strip().rsplit(" ", 1)[-1]
    proc = psutil.Process(master.pid)
    print(f"master pid {master.pid} at {address}", flush=True)
    stop = asyncio.Event()
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, -(-nodes // per_channel)))]
    try:
        t0 = time.monotonic()
        agents = [HollowAgent(channels[i % len(channels)], f"hollow-{i:04d}") for i in range(nodes)]
        tasks = [asyncio.create_task(a.run(stop)) for a in agents]
        # Apply to a cluster whose nodes are all in: a join storm and a 10,000-pod apply at
        # once measured the storm (registrations waited for the loop) more than the apply.
        while sum(1 for a in agents if a.acks) < nodes:
            if time.monotonic() - t0 > timeout:
                joined = sum(1 for a in agents if a.acks)
                print(f"only {joined} of {nodes} hollow agents joined in {timeout:.0f}s")
                return None
            await asyncio.sleep(0.2)
        print(f"{nodes} hollow agents joined (first ack) in {time.monotonic() - t0:.1f}s")
        manifest = Path(data) / "deploy.yaml"
        manifest.write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: hollow}\n"
            f"spec:\n  replicas: {pods}\n  selector: {{matchLabels: {{app: hollow}}}}\n"
            "  template:\n    metadata: {labels: {app: hollow}}\n    spec:\n"
            "      containers: [{name: c, image: nginx:latest, ports: [{containerPort: 80}]}]\n"
        )
        t1 = time.monotonic()
        await asyncio.to_thread(cli, address, "apply", "-f", str(manifest))
        while await asyncio.to_thread(running_pods, address) < pods:
            if time.monotonic() - t1 > timeout:
                print(f"not all {pods} pods Running after {timeout:.0f}s: did not converge")
                return None
            await asyncio.sleep(1.0)
        converge = time.monotonic() - t1
        print(f"{pods} pods Running on {nodes} hollow nodes in {converge:.1f}s", flush=True)
        await asyncio.sleep(3)  # let the status flushes settle
        for a in agents:
            a.acks = 0
        me = psutil.Process()
        cpu0, mine0, w0 = proc.cpu_times(), me.cpu_times(), time.monotonic()
        await asyncio.sleep(window)
        cpu1, mine1, w1 = proc.cpu_times(), me.cpu_times(), time.monotonic()
        agents_cpu = (mine1.user - mine0.user + mine1.system - mine0.system) / (w1 - w0)
        print(f"the hollow agents' own process used {agents_cpu:.2f} cores in the window")
        used = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / (w1 - w0)
        rss = proc.memory_info().rss / 2**20
        beats = sum(a.acks for a in agents)
        ready = await asyncio.to_thread(ready_nodes, address)
        print(
            f"during the window: {beats / (w1 - w0):.0f} heartbeat acks/s received, "
            f"{ready}/{nodes} nodes Ready at the end"
        )
        silent = Counter(a.stage for a in agents if a.acks == 0)
        if silent:
            print(f"agents without an ack in the window, by stage: {dict(silent)}")
        states = Counter(ch.get_state().name for ch in channels)
        print(f"hollow connections by state: {dict(states)}")
        ended = Counter(a.ended for a in agents if a.ended)
        if ended:
            print(f"agent sessions ended (hollow agents do not reconnect): {dict(ended)}")
        reasons = await asyncio.to_thread(event_reasons, address)
        print(f"events by reason: {dict(sorted(reasons.items()))}")
        print()
        print("nodes | pods  | apply->all Running | master CPU (steady, cores) | master RSS")
        print(f"{nodes:5d} | {pods:5d} | {converge:17.1f}s | {used:26.3f} | {rss:7.0f} MiB")
        print(f"target: master CPU < 0.333 cores -> {'ok' if used < 1 / 3 else 'MISS'}")
        stop.set()
        for t in tasks:
            t.cancel()
        return HollowResult(nodes, pods, converge, used, rss, beats / (w1 - w0), ready)
    finally:
        master.terminate()
        try:
            master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print("the master did not stop within 30 s of SIGTERM: killed", file=sys.stderr)
            master.kill()
            master.wait()
        for ch in channels:
            await ch.close()
        subprocess.run(["rm", "-rf", data], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument(
        "--source",
        type=Path,
        help="run the master from this tree (e.g. `git archive COMMIT | tar -x -C DIR`), "
        "for a before/after comparison with the same hollow agents",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to converge")
    parser.add_argument(
        "--agents-per-channel",
        type=int,
        default=10,
        help="hollow agents sharing one gRPC connection (real agents have one each; "
        "with 100 per connection half of 1,000 never got their session through)",
    )
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = asyncio.run(
        main_async(
            args.nodes, args.pods, args.window, args.agents_per_channel, args.source, args.timeout
        )
    )
    sys.exit(0 if result is not None else 1)


if __name__ == "__main__":
    main()
