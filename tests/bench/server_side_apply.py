"""Server-side apply beside client-side apply: what managedFields cost a write.

Starts a real master (`--insecure --no-lb`, as tests/bench/kube_api.py: plaintext, so
only the control plane is measured), creates two deployments (replicas 0: no pods)
and then, round after round, changes one env value of each:

- through kubectl: `kubectl apply -f` (client-side: GET, strategic merge PATCH, as
  `kubectl-client-side-apply`) and `kubectl apply --server-side -f` (one apply PATCH;
  kubectl starts, reads discovery and OpenAPI from its cache, then writes), each
  timed from process start to exit;
- over HTTP (aiohttp, no process start): a strategic merge PATCH and an apply PATCH
  of the same change, timed from request to answer: the master's own cost;
- in this process: the CPU the managedFields bookkeeping takes per write (load
  does not change CPU time much, so this one compares across machines' busy hours).

The two sides alternate within each round, so load changes hit both alike.

    python -m tests.bench.server_side_apply --runs 7

Prints one table (median and worst of the runs, and the load average) and appends the
figures to tests/bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.bench.kube_api import DEPLOYMENTS, start_master
from tests.bench.results import Figure, load_average, record, table


def manifest(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "pinnace/httpd:latest",
                            "env": [{"name": "ROUND", "value": value}],
                        }
                    ]
                },
            },
        },
    }


def kubeconfig(workdir: Path, api: str) -> Path:
    path = workdir / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "bench", "cluster": {"server": api}}],
                "users": [{"name": "bench", "user": {}}],
                "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
                "current-context": "bench",
            }
        )
    )
    return path


def timed_kubectl(kubectl: str, env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return elapsed


async def timed_patch(http: aiohttp.ClientSession, url: str, body: Any, kind: str) -> float:
    start = time.perf_counter()
    async with http.patch(url, data=json.dumps(body), headers={"Content-Type": kind}) as r:
        text = await r.read()
        if r.status >= 300:
            raise SystemExit(f"PATCH {url}: {r.status} {text[:300]!r}")
    return time.perf_counter() - start


async def run(runs: int, kubectl: str, workdir: Path) -> list[Figure]:
    proc, _, api = start_master(workdir)
    api = api if api.startswith("http") else f"http://{api}"
    try:
        config = kubeconfig(workdir, api)
        env = {**os.environ, "KUBECONFIG": str(config), "HOME": str(workdir)}
        files = {}
        for name in ("csa", "ssa"):
            files[name] = workdir / f"{name}.yaml"
            files[name].write_text(yaml.safe_dump(manifest(name, "0")))
        timed_kubectl(kubectl, env, "apply", "-f", str(files["csa"]))
        timed_kubectl(kubectl, env, "apply", "--server-side", "-f", str(files["ssa"]))
        times: dict[str, list[float]] = {k: [] for k in ("csa", "ssa", "smp", "apply")}
        async with aiohttp.ClientSession() as http:
            # The applied one is created by its own apply: created otherwise, its fields
            # would be its creator's, and the first apply would (rightly) conflict.
            await http.post(api + DEPLOYMENTS, json=manifest("smp", "0"))
            await timed_patch(
                http,
                f"{api}{DEPLOYMENTS}/apply?fieldManager=bench",
                manifest("apply", "0"),
                "application/apply-patch+yaml",
            )
            for i in range(1, runs + 1):
                for name in ("csa", "ssa"):
                    files[name].write_text(yaml.safe_dump(manifest(name, str(i))))
                times["csa"].append(timed_kubectl(kubectl, env, "apply", "-f", str(files["csa"])))
                times["ssa"].append(
                    timed_kubectl(kubectl, env, "apply", "--server-side", "-f", str(files["ssa"]))
                )
                times["smp"].append(
                    await timed_patch(
                        http,
                        f"{api}{DEPLOYMENTS}/smp?fieldManager=bench",
                        manifest("smp", str(i)),
                        "application/strategic-merge-patch+json",
                    )
                )
                times["apply"].append(
                    await timed_patch(
                        http,
                        f"{api}{DEPLOYMENTS}/apply?fieldManager=bench",
                        manifest("apply", str(i)),
                        "application/apply-patch+yaml",
                    )
                )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    labels = {
        "csa": "kubectl apply (client-side), update",
        "ssa": "kubectl apply --server-side, update",
        "smp": "HTTP strategic merge PATCH, update",
        "apply": "HTTP apply PATCH (server-side apply), update",
    }
    return [
        Figure(
            labels[k],
            statistics.median(v) * 1000,
            "ms",
            f"median of {len(v)}, worst {max(v) * 1000:.1f} ms",
        )
        for k, v in times.items()
    ]


def bookkeeping_cpu(writes: int) -> list[Figure]:
    """CPU per write of the managedFields bookkeeping alone (in this process): rendering
    the stored and the planned object, comparing them and updating the ledger (the
    tracker every write now runs), and for an apply also merging and pruning."""
    from dataclasses import replace

    from master.api.fieldowners import field_tracker
    from master.api.managedfields import Manager, applied_object
    from master.manifest import parse_manifests

    def parsed(value: str) -> Any:
        text = json.dumps(manifest("web", value)).encode()
        return parse_manifests([("web.json", text)]).objects[0]

    stored = replace(parsed("0"), meta=replace(parsed("0").meta, uid="u", resource_version=1))
    planned = [parsed(str(i)) for i in range(1, writes + 1)]
    update = field_tracker(Manager("kubectl-client-side-apply", "Update", "apps/v1"), 1.0)
    created = update(None, stored)
    start = time.process_time()
    for p in planned:
        update(created, p)
    update_ms = (time.process_time() - start) / writes * 1000
    # The applier applied before (so its last set is pruned against), beside an updater.
    applier = Manager("kubectl", "Apply", "apps/v1")
    live = manifest("web", "0")
    applied = field_tracker(applier, 1.0, live)(created, stored)
    start = time.process_time()
    for i, p in enumerate(planned, 1):
        config = manifest("web", str(i))
        applied_object(applied.meta.managed_fields, live, config, "Deployment", applier)
        field_tracker(applier, 1.0, config, force=True)(applied, p)
    apply_ms = (time.process_time() - start) / writes * 1000
    note = f"mean of {writes}, CPU time in-process"
    return [
        Figure("managedFields bookkeeping of an update", update_ms, "ms CPU", note),
        Figure("managedFields bookkeeping of an apply", apply_ms, "ms CPU", note),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--kubectl", default=str(Path(sys.executable).parent / "kubectl"))
    args = parser.parse_args()
    before = load_average()
    with tempfile.TemporaryDirectory(prefix="pinnace-ssa-bench-") as tmp:
        figures = asyncio.run(run(args.runs, args.kubectl, Path(tmp)))
    figures += bookkeeping_cpu(200)
    after = load_average()
    print(table(figures))
    print(f"load average before {before}, after {after}")
    record(figures, f"python -m tests.bench.server_side_apply --runs {args.runs}")


if __name__ == "__main__":
    main()
