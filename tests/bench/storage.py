"""Benchmark: the write path of a pod's PersistentVolumeClaim, beside a plain Docker volume
and the host's disk.

Run as `python -m tests.bench.storage [--runs 3] [--mib 256] [--syncs 200]`. It starts a
pinnace master and one agent (subprocesses, 127.0.0.1), applies a claim and a deployment
of `pinnace/httpd` that mounts it, and measures inside that pod's container; beside it,
the same commands in a `docker run` container on a plain Docker volume, and on a
bind-mounted directory of the host's disk. The claim is a loop-mounted ext4 file of
its size when the agent runs as root (agent/claim_disks.py), as it does here. Per target and run:

- sequential write: `dd` of `--mib` MiB in 1 MiB blocks with `conv=fsync` (MiB/s);
- fsync rate: `--syncs` writes of 4 KiB, each followed by fsync (`dd conv=fsync` in a
  shell loop; the same loop everywhere, so its process starts cost every target alike).

Targets run interleaved, `--runs` times, each run starting with the next target and
the host's disk flushed before each measure; the table shows the median and the worst run,
and the claim's ratio to the plain Docker volume (target >= 0.95). One JSON line is
appended to `tests/bench/results.jsonl`. Everything started is removed (the cluster,
its volumes, the comparison container and volume, the host directory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from agent.claim_disks import DEFAULT_ROOT as CLAIM_ROOT
from agent.claim_disks import ClaimDisks
from tests.bench.engine import wait_until
from tests.bench.procs import REPO, PinnaceProcs

IMAGE = "pinnace/httpd:latest"
RESULTS = REPO / "tests" / "bench" / "results.jsonl"

APP = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: bench-data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench-writer}
spec:
  replicas: 1
  selector: {matchLabels: {app: bench-writer}}
  template:
    metadata: {labels: {app: bench-writer}}
    spec:
      containers:
        - name: writer
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          volumeMounts: [{name: data, mountPath: /data}]
      volumes:
        - name: data
          persistentVolumeClaim: {claimName: bench-data}
"""

Exec = Callable[[str], str]


def _seq_script(mib: int) -> str:
    return f"rm -f /data/seq; dd if=/dev/zero of=/data/seq bs=1048576 count={mib} conv=fsync"


def _sync_script(n: int) -> str:
    return (
        f"i=0; while [ $i -lt {n} ]; do "
        "dd if=/dev/zero of=/data/sync bs=4096 count=1 conv=fsync,notrunc 2>/dev/null; "
        "i=$((i+1)); done"
    )


def _measure(run: Exec, mib: int, syncs: int) -> tuple[float, float]:
    """(sequential MiB/s, fsyncs/s) through `run` (a shell in the target container)."""
    start = time.perf_counter()
    run(_seq_script(mib))
    seq = mib / (time.perf_counter() - start)
    start = time.perf_counter()
    run(_sync_script(syncs))
    rate = syncs / (time.perf_counter() - start)
    run("rm -f /data/seq /data/sync")
    return seq, rate


def _exec_in(container: Any) -> Exec:
    def run(script: str) -> str:
        code, out = container.exec_run(["sh", "-c", script])
        if code != 0:
            raise RuntimeError(f"{script!r} failed in {container.name}: {out!r}")
        return str(out)

    return run


def _pod_container(procs: PinnaceProcs, client: docker.DockerClient) -> Any:
    found: list[Any] = []

    def ready() -> bool:
        pods = procs.get_json("pods")["items"]
        for pod in pods:
            statuses = pod["status"].get("containerStatuses", [])
            if statuses and statuses[0].get("ready"):
                cid = statuses[0]["containerID"].removeprefix("docker://")
                found.append(client.containers.get(cid))
                return True
        return False

    wait_until("the bench pod running on its claim", ready, timeout=120)
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--syncs", type=int, default=200)
    args = parser.parse_args(argv)
    client = docker.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-bench-storage-"))
    host_dir = workdir / "host-disk"
    host_dir.mkdir()
    procs = PinnaceProcs(client, workdir)
    plain_volume = client.volumes.create(labels={"pinnace.bench": "storage"})
    others: list[Any] = []
    results: dict[str, list[tuple[float, float]]] = {"claim": [], "volume": [], "host": []}
    try:
        procs.start_master("--no-lb")
        node = f"bench-storage-{int(time.time())}"
        procs.start_agent(node)
        procs.wait_ready([node], timeout=60)
        manifest = workdir / "app.yaml"
        manifest.write_text(APP)
        procs.cli("apply", "-f", str(manifest))
        pod = _pod_container(procs, client)
        for mount, name in (
            (f"{plain_volume.name}:/data", "volume"),
            (f"{host_dir}:/data", "host"),
        ):
            others.append(
                client.containers.run(
                    IMAGE,
                    detach=True,
                    volumes=[mount],
                    labels={"pinnace.bench": "storage"},
                    name=f"pinnace-bench-storage-{name}-{int(time.time())}",
                )
            )
        targets = {
            "claim": _exec_in(pod),
            "volume": _exec_in(others[0]),
            "host": _exec_in(others[1]),
        }
        order = list(targets)
        for i in range(args.runs):
            # Each run starts with another target, and the disk is flushed before each
            # measure, so no target pays for another's write-back.
            for name in order[i % len(order) :] + order[: i % len(order)]:
                os.sync()
                results[name].append(_measure(targets[name], args.mib, args.syncs))
    finally:
        for container in others:
            container.remove(force=True)
        procs.close()
        plain_volume.remove(force=True)
        for node in procs.node_names:
            for vol in client.volumes.list(filters={"label": f"pinnace.node={node}"}):
                vol.remove(force=True)
            # The claim's loop-mounted file (agent/claim_disks.py): unmounted, removed.
            disks = ClaimDisks(Path(CLAIM_ROOT) / node)
            for name in disks.names():
                disks.remove(name)
            shutil.rmtree(disks.root, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)
    print(_table(results))
    _record(results, args)
    return 0


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} (worst {min(values):.1f})"


def _table(results: dict[str, list[tuple[float, float]]]) -> str:
    labels = {
        "claim": "pod on a pinnace claim",
        "volume": "docker run, plain volume",
        "host": "docker run, host directory",
    }
    lines = [f"{'target':28} | {'sequential MiB/s':26} | {'fsyncs/s':26}"]
    for name, label in labels.items():
        seq = [r[0] for r in results[name]]
        sync = [r[1] for r in results[name]]
        lines.append(f"{label:28} | {_cell(seq):26} | {_cell(sync):26}")
    claim, plain = results["claim"], results["volume"]
    for i, what in enumerate(("sequential", "fsync")):
        ratio = statistics.median(r[i] for r in claim) / statistics.median(r[i] for r in plain)
        verdict = "ok" if ratio >= 0.95 else "MISS"
        lines.append(f"claim / plain volume, {what}: {ratio:.2f}x (target >= 0.95: {verdict})")
    return "\n".join(lines)


def _record(results: dict[str, list[tuple[float, float]]], args: argparse.Namespace) -> None:
    line = {
        "bench": "storage",
        "at": time.time(),
        "runs": args.runs,
        "mib": args.mib,
        "syncs": args.syncs,
        "results": {k: [list(r) for r in v] for k, v in results.items()},
    }
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    sys.exit(main())
