"""Benchmark: HAProxy settings side by side, against the direct path, in one run.

Run as `python -m tests.bench.lb_tuning [--variants default,threads1] [--connections 16,64]
[--rounds 5] [--seconds 4] [--backends unlimited,500m]`. For each backend set nginx containers
publish port 80 on 127.0.0.1, made as an agent makes a pod's container (agent/containers.py
and DockerRuntime, so a CPU limit becomes the engine's NanoCpus as for
`resources.limits.cpu`); one HAProxy per variant and backend set (pinnace's own rendered
config, master/lb/render.py, for an HTTP service of those pods, with the variant's settings)
listens on its own free port. Each round runs wrk (`-t2 -cC`, tests/bench/lb_wrk.py) once
against one pod directly and once through every variant, in turn, so a noisy moment of a
shared machine hits them all.

Backend sets: `unlimited` is three pods without limits, the figure of earlier runs. There
wrk, HAProxy and nginx share this machine's CPUs, so HAProxy's CPU is taken from the pods
and the ratio measures the machine rather than the proxy. A limited set (`500m`: one pod
limited to half a CPU, and HAProxy fronting that same pod only) makes the pod the bottleneck
on both paths, as when the proxy has a machine of its own: then the ratio is what the proxy
costs the pod's throughput (its added latency, its connection handling).

Two figures per variant and connection count: the throughput ratio against direct (median
of the rounds, worst round beside it), and HAProxy's CPU time per request (user + system of
its processes during its wrk run, over the requests answered). On a machine whose CPUs are
busy the ratio swings with the neighbours; the CPU per request is what a setting changes,
and it is the share of the machine the proxy takes from the pods.

Variants: `default` (HAProxy's own thread count), `threads1` (nbthread 1, what pinnace
renders on machines of two CPUs), `threads2`; and on top of threads1 one setting each:
`keepalive` (option http-keep-alive, HAProxy 2.6's default said explicitly), `reuse-always`
(http-reuse always), `bufsize8k` / `bufsize64k` (tune.bufsize), `srvmaxconn16` (at most 16
connections to each pod, the rest queued in HAProxy for up to 30 s: with the connect
timeout as the queue's, 500 ms, a loaded machine answered 503s), `maxconn8k` (global maxconn
8192; 65536 needs more open files than this machine's limit of 20000 lets HAProxy have),
`reuse-never` (http-reuse never: each client's own server connection, no idle pool),
`nodelay` (option http-no-delay), `cpumap` (its one thread pinned to CPU 1), `http-splice`
(option splice-auto: the kernel moves bytes between sockets when HAProxy sees it can). And
the same port in TCP mode, as pinnace renders a port not known to speak HTTP: `tcp`,
`tcp-splice`, `tcp-threads2`. And HTTP mode less one of its features, for what each costs:
`http-noretry` (no layer-7 retries), `http-nofwd` (no X-Forwarded-For).
Every container and HAProxy started here is removed or stopped by id/PID, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import docker

from agent.containers import container_config
from agent.model import ContainerPort, ContainerSpec, PodAssignment, PodSpec, Resources
from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import RuntimeFailure
from master.lb.model import Endpoint, LbService, LbSettings, ProxyMode
from tests.bench.engine import BenchError, wait_until
from tests.bench.lb_wrk import WRK_MISSING, WrkError, run_wrk, wrk_available
from tests.bench.results import Figure, load_average, record, table
from tests.lb_support import render_config
from tests.support import haproxy_path

IMAGE = "nginx:latest"
LABEL = "pinnace.bench.lb-tuning"
COMMAND = "python -m tests.bench.lb_tuning"
BASE = LbSettings(listen_address="127.0.0.1")
ONE = replace(BASE, threads=1)
SPLICE = "option splice-auto"
L7_RETRY = (
    "retry-on conn-failure empty-response junk-response",
    "http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }",
)


@dataclass(frozen=True, slots=True)
class Variant:
    """LbSettings, plus lines tried on top of pinnace's rendering (added to `global` and
    `defaults`; `server` appended to the default-server line)."""

    settings: LbSettings
    global_lines: tuple[str, ...] = ()
    defaults_lines: tuple[str, ...] = ()
    server: str = ""
    # The service port's mode: http as pinnace renders an HTTP port, tcp as any other port.
    mode: ProxyMode = "http"
    # Rendered lines left out (stripped of indentation): what one HTTP feature costs.
    drop: tuple[str, ...] = ()


VARIANTS = {
    "default": Variant(BASE),
    "threads1": Variant(ONE),
    "threads2": Variant(replace(BASE, threads=2)),
    "keepalive": Variant(ONE, defaults_lines=("option http-keep-alive",)),
    "reuse-always": Variant(ONE, defaults_lines=("http-reuse always",)),
    "bufsize8k": Variant(ONE, global_lines=("tune.bufsize 8192",)),
    "bufsize64k": Variant(ONE, global_lines=("tune.bufsize 65536",)),
    "srvmaxconn16": Variant(ONE, defaults_lines=("timeout queue 30s",), server="maxconn 16"),
    "maxconn8k": Variant(replace(ONE, max_connections=8192)),
    "cpumap": Variant(ONE, global_lines=("cpu-map 1/1 1",)),
    "http-splice": Variant(ONE, defaults_lines=(SPLICE,)),
    "tcp": Variant(ONE, mode="tcp"),
    "tcp-splice": Variant(ONE, defaults_lines=(SPLICE,), mode="tcp"),
    "tcp-threads2": Variant(replace(BASE, threads=2), mode="tcp"),
    "http-noretry": Variant(ONE, drop=L7_RETRY),
    "http-nofwd": Variant(ONE, drop=("option forwardfor",)),
    "reuse-never": Variant(ONE, defaults_lines=("http-reuse never",)),
    "nodelay": Variant(ONE, defaults_lines=("option http-no-delay",)),
}
UNLIMITED = "unlimited"
NGINX_PORT = 80


def haproxy_config(variant: Variant, svc: LbService, socket_path: Path) -> str:
    """pinnace's rendered config for `svc` in the variant's mode with the variant's lines
    added (pure)."""
    text = render_config([replace(svc, mode=variant.mode)], variant.settings, socket_path)
    out: list[str] = []
    for line in text.splitlines():
        if line.strip() in variant.drop:
            continue
        if variant.server and line.startswith("    default-server "):
            line = f"{line} {variant.server}"
        out.append(line)
        if line == "global":
            out += [f"    {extra}" for extra in variant.global_lines]
        elif line == "defaults":
            out += [f"    {extra}" for extra in variant.defaults_lines]
    return "\n".join(out) + "\n"


def backend_millis(name: str) -> int:
    """`unlimited` -> 0, `500m` -> 500, `1` -> 1000; ValueError otherwise."""
    if name == UNLIMITED:
        return 0
    millis = int(name[:-1]) if name.endswith("m") else round(float(name) * 1000)
    if millis <= 0:
        raise ValueError(name)
    return millis


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="default,threads1", help=f"of {','.join(VARIANTS)}")
    p.add_argument("--connections", default="16,64", help="wrk -c values, comma-separated")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=int, default=4, help="wrk duration per target and round")
    p.add_argument(
        "--backends",
        default=f"{UNLIMITED},500m",
        help="backend sets: 'unlimited' (3 pods) and/or CPU limits like 500m (1 pod each)",
    )
    p.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = p.parse_args(argv)
    args.backend_names = [b for b in args.backends.split(",") if b]
    try:
        args.backend_millis = [backend_millis(b) for b in args.backend_names]
    except ValueError:
        p.error(f"--backends: expected 'unlimited' or CPU limits like 500m, got {args.backends!r}")
    if not args.backend_names:
        p.error("--backends: none given")
    args.variant_names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in args.variant_names if v not in VARIANTS]
    if unknown or not args.variant_names:
        p.error(f"--variants: unknown {','.join(unknown) or '(none)'}; known {','.join(VARIANTS)}")
    try:
        args.conns = [int(c) for c in args.connections.split(",") if c]
    except ValueError:
        p.error(f"--connections: expected integers, got {args.connections!r}")
    if args.rounds < 1 or args.seconds < 1 or not args.conns:
        p.error("--rounds, --seconds and --connections must be positive")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its children (HAProxy's master and its worker)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    ticks = 0
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def start_backends(
    runtime: DockerRuntime, run: str, backend: str, millis: int
) -> tuple[list[str], list[int]]:
    """The backend set's nginx pods, made as the agent makes a pod's containers: ids, ports."""
    ids: list[str] = []
    ports: list[int] = []
    for i in range(1 if millis else 3):
        spec = ContainerSpec(
            "web",
            IMAGE,
            ports=(ContainerPort(NGINX_PORT),),
            limits=Resources(cpu_millis=millis),
        )
        pod = PodAssignment(f"{run}-{backend}-{i}", 1, PodSpec((spec,)))
        config = container_config(runtime.node, "127.0.0.1", pod, spec, 0)
        info = asyncio.run(runtime.create_and_start(config))
        ids.append(info.id)
        ports.append(info.ports[f"{NGINX_PORT}/TCP"])
    return ids, ports


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    haproxy = haproxy_path()
    if haproxy is None or not wrk_available():
        print(WRK_MISSING if haproxy else "haproxy is not installed", file=sys.stderr)
        return 1
    client = docker.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-lb-tuning-"))
    run = workdir.name[-6:].lower().replace("_", "x")
    runtime = DockerRuntime(f"lbtuning{run}")
    procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
    started: list[str] = []  # removed by id at the end, whatever happens
    direct: dict[str, int] = {}
    listen: dict[tuple[str, str], int] = {}
    try:
        for backend, millis in zip(args.backend_names, args.backend_millis, strict=True):
            ids, ports = start_backends(runtime, run, backend, millis)
            started += ids
            for port in ports:
                wait_until(f"nginx on 127.0.0.1:{port}", functools.partial(_answers, port), 30)
            direct[backend] = ports[0]
            endpoints = tuple(
                Endpoint(f"web-{i}", "127.0.0.1", p, True) for i, p in enumerate(ports)
            )
            for name in args.variant_names:
                key = (name, backend)
                listen[key] = _free_port()
                svc = LbService("web", "http", listen[key], endpoints, mode="http")
                cfg = workdir / f"{name}-{backend}.cfg"
                cfg.write_text(
                    haproxy_config(VARIANTS[name], svc, workdir / f"{name}-{backend}.sock")
                )
                log = (workdir / f"{name}-{backend}.log").open("wb")
                procs[key] = subprocess.Popen(
                    [haproxy, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=log
                )
                wait_until(f"HAProxy {name}", functools.partial(_answers, listen[key]), 30)
        rps: dict[tuple[str, str, int], list[float]] = {}
        cpu_us: dict[tuple[str, str, int], list[float]] = {}
        loads: list[float] = []
        for _ in range(args.rounds):
            for backend in args.backend_names:
                for c in args.conns:
                    targets = [("direct", direct[backend])]
                    targets += [(name, listen[(name, backend)]) for name in args.variant_names]
                    for target, port in targets:
                        proc = procs.get((target, backend))
                        before = _cpu_seconds(proc.pid) if proc else 0.0
                        result = run_wrk(port, args.seconds, 2, c)
                        if result.errors:
                            raise BenchError(f"wrk saw {result.errors} errors through {target}")
                        rps.setdefault((target, backend, c), []).append(result.requests_per_second)
                        if proc:
                            used = _cpu_seconds(proc.pid) - before
                            cpu_us.setdefault((target, backend, c), []).append(
                                used / result.requests * 1e6
                            )
            loads.append(os.getloadavg()[0])
        load = load_average()
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        raise
    except (BenchError, WrkError, docker.errors.APIError, RuntimeFailure) as e:
        print(f"lb_tuning failed: {e} (HAProxy logs in {workdir})", file=sys.stderr)
        return 1
    finally:
        for proc in procs.values():
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for cid in started:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(cid, force=True)
        asyncio.run(runtime.close())
        client.close()
    # Kept only when the run failed (its HAProxy logs say why).
    shutil.rmtree(workdir, ignore_errors=True)

    figures = []
    for backend in args.backend_names:
        pods = f"{backend} x1" if backend != UNLIMITED else f"{UNLIMITED} x3"
        for c in args.conns:
            base = rps[("direct", backend, c)]
            figures.append(
                Figure(
                    f"[{pods}] direct -c{c}",
                    statistics.median(base),
                    "req/s",
                    f"median of {len(base)}, worst {min(base):.0f}",
                )
            )
            for name in args.variant_names:
                ratios = [x / d for x, d in zip(rps[(name, backend, c)], base, strict=True)]
                spent = cpu_us[(name, backend, c)]
                figures.append(
                    Figure(
                        f"[{pods}] {name} -c{c} / direct",
                        statistics.median(ratios),
                        "ratio",
                        f"median of {len(ratios)} rounds, worst {min(ratios):.2f}",
                    )
                )
                figures.append(
                    Figure(
                        f"[{pods}] {name} -c{c} HAProxy CPU per request",
                        statistics.median(spent),
                        "us",
                        f"median of {len(spent)}, worst {max(spent):.1f}",
                    )
                )
    print(
        f"load average {load} (1-minute load after each round: "
        f"{', '.join(f'{x:.1f}' for x in loads)}); "
        f"{args.rounds} rounds of wrk -t2 -d{args.seconds}s"
    )
    print(table(figures))
    if not args.no_record:
        record(figures, f"{COMMAND} {' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
