"""What a pod sandbox's holder costs the engine at start, shape by shape.

Run as `python -m tests.bench.holder_cost [--replicas 3,30] [--rounds 3]` (heavy: one
big-bench hold). Each trial starts N pods at once, one thread per pod, through the Docker
API as the agent does, in one of these shapes (the order rotated each round):

- `run`: nginx created with port 80 published on 127.0.0.1 and started: what the
  apply_to_running bench's parallel `docker run -p 127.0.0.1::80` asks of the engine;
- `sandbox`: a holder (pinnace/pause, port 80 published, the pod's hostname) created and
  started, then nginx created joined to it (`network_mode=container:<holder>`) and started:
  the default agent's engine calls before this change, less its inspects;
- `sandbox-inspects`: the same with the agent's inspects (holder name, pause image, each
  container after its start);
- `lognone`: the holder with log driver none; `noports`: the holder with nothing published;
  `bare`: both (the cheapest holder the engine can make);
- `holder`: the holder alone; `joined`: nginx joined to holders made before the clock
  starts (what the app's part costs once a sandbox exists).

Per shape: wall seconds from the first call to the last start returned, the CPU seconds
dockerd and containerd used meanwhile, and the whole machine's busy CPU (shims,
fuse-overlayfs, the containers' own processes and the neighbours' work included).
Everything made here carries the label pinnace.bench.holder-cost=<run id> and is removed
in finally blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker

from tests.bench.engine import settle

NGINX = "nginx:latest"
PAUSE = "pinnace/pause:latest"
LABEL = "pinnace.bench.holder-cost"
SHAPES = (
    "run",
    "sandbox",
    "sandbox-inspects",
    "lognone",
    "noports",
    "bare",
    "holder",
    "joined",
)
_TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    """The machine's busy CPU seconds so far (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / _TICK


def _engine_seconds() -> float:
    """CPU seconds of dockerd and containerd so far, with their reaped children's (runc,
    iptables, the userland proxy). Shims and fuse-overlayfs processes come and go with the
    containers, so the machine's busy CPU beside it is the fuller figure."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm not in ("dockerd", "containerd"):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += sum(int(x) for x in fields[11:15])
    return total / _TICK


class Shapes:
    """The per-pod engine work of each shape (one call per pod, in its own thread)."""

    def __init__(self, api: Any, run_id: str) -> None:
        self.api = api
        self.labels = {LABEL: run_id}

    def _host_config(self, **kwargs: Any) -> Any:
        return self.api.create_host_config(restart_policy={"Name": "no"}, **kwargs)

    def _start(self, cid: str, inspect: bool) -> None:
        self.api.start(cid)
        if inspect:
            self.api.inspect_container(cid)

    def holder(self, name: str, ports: bool = True, log: bool = True, inspect: bool = False) -> str:
        if inspect:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.inspect_container(f"{name}.sandbox")
            self.api.inspect_image(PAUSE)
        host = self._host_config(
            port_bindings={"80/tcp": ("127.0.0.1", None)} if ports else None,
            log_config={"Type": "json-file" if log else "none", "Config": {}},
        )
        cid = str(
            self.api.create_container(
                PAUSE,
                name=f"{name}.sandbox",
                labels=self.labels,
                hostname=name,
                ports=[(80, "tcp")] if ports else None,
                host_config=host,
            )["Id"]
        )
        self._start(cid, inspect)
        return cid

    def app(self, name: str, holder: str = "", inspect: bool = False) -> str:
        if holder:
            host = self._host_config(network_mode=f"container:{holder}")
            kwargs: dict[str, Any] = {}
        else:
            host = self._host_config(port_bindings={"80/tcp": ("127.0.0.1", None)})
            kwargs = {"hostname": name, "ports": [(80, "tcp")]}
        cid = str(
            self.api.create_container(
                NGINX, name=name, labels=self.labels, host_config=host, **kwargs
            )["Id"]
        )
        self._start(cid, inspect)
        return cid

    def step(self, shape: str) -> Callable[[str, str], None]:
        """`shape`'s work for one pod: (pod name, holder made beforehand or "")."""
        steps: dict[str, Callable[[str, str], Any]] = {
            "run": lambda n, _: self.app(n),
            "sandbox": lambda n, _: self.app(n, self.holder(n)),
            "sandbox-inspects": lambda n, _: self.app(
                n, self.holder(n, inspect=True), inspect=True
            ),
            "lognone": lambda n, _: self.app(n, self.holder(n, log=False)),
            "noports": lambda n, _: self.app(n, self.holder(n, ports=False)),
            "bare": lambda n, _: self.app(n, self.holder(n, ports=False, log=False)),
            "holder": lambda n, _: self.holder(n),
            "joined": lambda n, h: self.app(n, h),
        }
        return steps[shape]

    def remove_all(self, run_id: str) -> None:
        found = self.api.containers(all=True, filters={"label": f"{LABEL}={run_id}"})
        # Joined containers first: the engine refuses nothing, but a holder removed first
        # leaves its members a moment without a network.
        found.sort(key=lambda c: str(c.get("Names", [""])[0]).endswith(".sandbox"))
        for c in found:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.remove_container(c["Id"], force=True)


def trial(
    shapes: Shapes, pool: ThreadPoolExecutor, shape: str, n: int, tag: str
) -> tuple[float, float, float]:
    """One shape at N pods: (wall s, engine CPU s, machine busy CPU s)."""
    names = [f"hc-{tag}-{i}" for i in range(n)]
    holders = [""] * n
    if shape == "joined":
        holders = list(pool.map(lambda name: shapes.holder(name), names))
    step = shapes.step(shape)
    engine0, busy0, t0 = _engine_seconds(), _busy_seconds(), time.monotonic()
    list(pool.map(step, names, holders))
    wall = time.monotonic() - t0
    return wall, _engine_seconds() - engine0, _busy_seconds() - busy0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.holder_cost")
    parser.add_argument("--replicas", default="3,30")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.replicas.split(",")]
    chosen = [s for s in args.shapes.split(",") if s]
    unknown = set(chosen) - set(SHAPES)
    if unknown:
        parser.error(f"--shapes: unknown {', '.join(sorted(unknown))}")
    client = docker.from_env(timeout=300)
    run_id = uuid.uuid4().hex[:8]
    shapes = Shapes(client.api, run_id)
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    print(f"load average at start: {os.getloadavg()}")
    try:
        with ThreadPoolExecutor(max(counts)) as pool:
            for n in counts:
                for r in range(args.rounds):
                    order = chosen[r % len(chosen) :] + chosen[: r % len(chosen)]
                    for shape in order:
                        settle(client)
                        try:
                            got = trial(shapes, pool, shape, n, f"{run_id}-{r}")
                        finally:
                            shapes.remove_all(run_id)
                        results.setdefault((shape, n), []).append(got)
                        print(
                            f"  N={n:<3} round {r + 1} {shape:<17} {got[0]:6.3f} s wall, "
                            f"engine {got[1]:6.2f} CPU-s, machine {got[2]:6.2f} CPU-s",
                            flush=True,
                        )
    finally:
        shapes.remove_all(run_id)
    print(f"load average at end: {os.getloadavg()}")
    print()
    print("median (worst) of the rounds; ratio: wall against `run` at the same N")
    print(f"{'shape':<17} {'N':>3} {'wall s':>14} {'ratio':>6} {'engine CPU-s':>15} {'machine':>8}")
    for n in counts:
        base = statistics.median(w for w, _, _ in results.get(("run", n), [(float("nan"),) * 3]))
        for shape in chosen:
            rows = results.get((shape, n), [])
            if not rows:
                continue
            wall = statistics.median(w for w, _, _ in rows)
            worst = max(w for w, _, _ in rows)
            eng = statistics.median(e for _, e, _ in rows)
            eng_worst = max(e for _, e, _ in rows)
            busy = statistics.median(b for _, _, b in rows)
            print(
                f"{shape:<17} {n:>3} {wall:6.3f} ({worst:5.3f}) {wall / base:6.2f} "
                f"{eng:6.2f} ({eng_worst:5.2f}) {busy:8.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
