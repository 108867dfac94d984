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
the host's disk flushed before each sequential measure. The fsync loop is cut in chunks
of 10 that take turns across the targets, so a burst of load from the machine's other
users (this one is shared) falls on every target alike rather than on whichever was
measuring then. The table shows the median and the worst run, the claim's ratio to the
plain Docker volume (target >= 0.95), and the load average before and after. The plain
volume and the host directory are the same disk through the same kind of mount: how far
apart they come out is the run's noise. One JSON line is appended to
`tests/bench/results.jsonl`. Everything started is removed (the cluster,
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


SYNC_CHUNK = 10


def _sequential(run: Exec, mib: int) -> float:
    """Sequential MiB/s through `run` (a shell in the target container)."""
    start = time.perf_counter()
    run(_seq_script(mib))
    seq = mib / (time.perf_counter() - start)
    run("rm -f /data/seq")
    return seq


def _fsync_rates(targets: dict[str, Exec], order: list[str], syncs: int) -> dict[str, float]:
    """fsyncs/s per target: `syncs` each, in chunks that take turns across the targets."""
    spent = dict.fromkeys(targets, 0.0)
    done = 0
    while done < syncs:
        n = min(SYNC_CHUNK, syncs - done)
        for name in (
            order[done // SYNC_CHUNK % len(order) :] + order[: done // SYNC_CHUNK % len(order)]
        ):
            start = time.perf_counter()
            targets[name](_sync_script(n))
            spent[name] += time.perf_counter() - start
        done += n
    for run in targets.values():
        run("rm -f /data/sync")
    return {name: syncs / spent[name] for name in targets}


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
        load_before = os.getloadavg()
        for i in range(args.runs):
            # Each run starts with another target, and the disk is flushed before each
            # measure, so no target pays for another's write-back.
            turn = order[i % len(order) :] + order[: i % len(order)]
            seq = {}
            for name in turn:
                os.sync()
                seq[name] = _sequential(targets[name], args.mib)
            os.sync()
            rates = _fsync_rates(targets, turn, args.syncs)
            for name in order:
                results[name].append((seq[name], rates[name]))
        load = (load_before, os.getloadavg())
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
    print(f"load average (1, 5, 15 min): before {_load(load[0])}, after {_load(load[1])}")
    _record(results, args, load)
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


def _load(avg: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in avg)


def _record(
    results: dict[str, list[tuple[float, float]]],
    args: argparse.Namespace,
    load: tuple[tuple[float, float, float], ...],
) -> None:
    line = {
        "bench": "storage",
        "at": time.time(),
        "runs": args.runs,
        "mib": args.mib,
        "syncs": args.syncs,
        "results": {k: [list(r) for r in v] for k, v in results.items()},
        "load": [list(x) for x in load],
    }
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    sys.exit(main())
