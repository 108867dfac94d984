"""Benchmark: HAProxy settings side by side, against the direct path, in one run.

Run as `python -m tests.bench.lb_tuning [--variants default,threads1] [--connections 16,64]
[--rounds 5] [--seconds 4]`. Three nginx containers publish port 80 on 127.0.0.1; one HAProxy
per variant (pinnace's own rendered config, master/lb/render.py, for an HTTP service of those
three pods, with the variant's settings) listens on its own free port. Each round runs wrk
(`-t2 -cC`, tests/bench/lb_wrk.py) once against one pod directly and once through every
variant, in turn, so a noisy moment of a shared machine hits them all.

Two figures per variant and connection count: the throughput ratio against direct (median
of the rounds, worst round beside it), and HAProxy's CPU time per request (user + system of
its processes during its wrk run, over the requests answered). On a machine whose CPUs are
busy the ratio swings with the neighbours; the CPU per request is what a setting changes,
and it is the share of the machine the proxy takes from the pods.

Variants: `default` (the settings pinnace shipped before: HAProxy's own thread count),
`threads1` (nbthread 1, what pinnace renders on machines of two CPUs), `threads2`. Every
container and HAProxy started here is removed or stopped by id/PID, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType

import docker

from master.lb.model import Endpoint, LbService, LbSettings
from tests.bench.engine import BenchError, wait_until
from tests.bench.lb_wrk import WRK_MISSING, WrkError, run_wrk, wrk_available
from tests.bench.results import Figure, load_average, record, table
from tests.lb_support import render_config
from tests.support import haproxy_path

IMAGE = "nginx:latest"
LABEL = "pinnace.bench.lb-tuning"
COMMAND = "python -m tests.bench.lb_tuning"
BASE = LbSettings(listen_address="127.0.0.1")
VARIANTS = {
    "default": BASE,
    "threads1": replace(BASE, threads=1),
    "threads2": replace(BASE, threads=2),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="default,threads1", help=f"of {','.join(VARIANTS)}")
    p.add_argument("--connections", default="16,64", help="wrk -c values, comma-separated")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=int, default=4, help="wrk duration per target and round")
    p.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = p.parse_args(argv)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    haproxy = haproxy_path()
    if haproxy is None or not wrk_available():
        print(WRK_MISSING if haproxy else "haproxy is not installed", file=sys.stderr)
        return 1
    client = docker.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-lb-tuning-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    started: list[str] = []  # removed by id at the end, whatever happens
    try:
        ports = []
        for _ in range(3):
            cid = client.api.create_container(
                IMAGE, ports=[80], labels={LABEL: workdir.name},
                host_config=client.api.create_host_config(port_bindings={80: ("127.0.0.1", None)}),
            )["Id"]  # fmt: skip
            started.append(cid)
            client.api.start(cid)
            ports.append(int(client.api.port(cid, 80)[0]["HostPort"]))
        for port in ports:
            wait_until(f"nginx on 127.0.0.1:{port}", functools.partial(_answers, port), 30)
        endpoints = tuple(Endpoint(f"web-{i}", "127.0.0.1", p, True) for i, p in enumerate(ports))
        listen: dict[str, int] = {}
        for name in args.variant_names:
            listen[name] = _free_port()
            svc = LbService("web", "http", listen[name], endpoints, mode="http")
            cfg = workdir / f"{name}.cfg"
            cfg.write_text(render_config([svc], VARIANTS[name], workdir / f"{name}.sock"))
            log = (workdir / f"{name}.log").open("wb")
            procs[name] = subprocess.Popen(
                [haproxy, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=log
            )
            wait_until(f"HAProxy {name}", functools.partial(_answers, listen[name]), 30)
        rps: dict[tuple[str, int], list[float]] = {}
        cpu_us: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for c in args.conns:
                for target, port in [("direct", ports[0]), *listen.items()]:
                    before = _cpu_seconds(procs[target].pid) if target in procs else 0.0
                    result = run_wrk(port, args.seconds, 2, c)
                    if result.errors:
                        raise BenchError(f"wrk saw {result.errors} errors through {target}")
                    rps.setdefault((target, c), []).append(result.requests_per_second)
                    if target in procs:
                        used = _cpu_seconds(procs[target].pid) - before
                        cpu_us.setdefault((target, c), []).append(used / result.requests * 1e6)
        load = load_average()
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        raise
    except (BenchError, WrkError, docker.errors.APIError) as e:
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
        client.close()

    figures = []
    for c in args.conns:
        direct = rps[("direct", c)]
        figures.append(
            Figure(
                f"direct -c{c}",
                statistics.median(direct),
                "req/s",
                f"median of {len(direct)}, worst {min(direct):.0f}",
            )
        )
        for name in listen:
            ratios = [x / d for x, d in zip(rps[(name, c)], direct, strict=True)]
            spent = cpu_us[(name, c)]
            figures.append(
                Figure(
                    f"{name} -c{c} / direct",
                    statistics.median(ratios),
                    "ratio",
                    f"median of {len(ratios)} rounds, worst {min(ratios):.2f}",
                )
            )
            figures.append(
                Figure(
                    f"{name} -c{c} HAProxy CPU per request",
                    statistics.median(spent),
                    "us",
                    f"median of {len(spent)}, worst {max(spent):.1f}",
                )
            )
    print(f"load average {load}; {args.rounds} rounds of wrk -t2 -d{args.seconds}s")
    print(table(figures))
    if not args.no_record:
        record(figures, f"{COMMAND} {' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
