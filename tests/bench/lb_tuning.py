"""Benchmark: HAProxy settings side by side, against the direct path, in one run.

Run as `python -m tests.bench.lb_tuning [--variants default,threads1] [--connections 16,64]
[--rounds 5] [--seconds 4] [--backends unlimited,500m]`. For each backend set nginx containers
publish port 80 on 127.0.0.1, made as an agent makes a pod's container (agent/containers.py
and DockerRuntime, so a CPU limit becomes the engine's NanoCpus as for
`resources.limits.cpu`); one HAProxy per variant and backend set (pinnace's own rendered
config, master/lb/render.py, for an HTTP service of those pods, with the variant's settings)
listens on its own free port.

How a busy machine is kept out of the ratio: every figure comes from pairs. A pair is one
wrk run (`-t2 -cC -dS`, tests/bench/lb_wrk.py) against one pod directly and one through a
variant, back to back, their order alternating from pair to pair (ABAB, BAAB, ...) so
neither side always gets the later, perhaps quieter, moment; the ratio is taken within the
pair, never against a direct figure from another moment, and many short rounds give the
median and the worst pair. A `control` pair (direct against direct) shows how far two
identical runs drift apart on the machine as it is: a ratio within that spread says
nothing. Beside the ratio, two CPU figures that a busy machine moves far less: HAProxy's
CPU per request (user + system of its processes, /proc/PID/stat, over the requests wrk
saw answered), and the CPU-model ratio: the CPU per request of the direct path (wrk's own,
from its rusage, plus the nginx containers' cgroups, Docker's port proxies and the processes
that work for each container outside its cgroup: its containerd shim, which carries nginx's
access log, and its fuse-overlayfs mount, which serves the page; `helper_pids`) over that
of the proxied path (the same plus HAProxy's). dockerd's share (it writes the log lines to
the json file) is left out: the engine is shared with the neighbours' containers. It is the
throughput ratio a machine whose CPUs are all taken by this client, proxy and pods would see,
whatever the neighbours do.

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
`http-noretry` (no layer-7 retries), `http-nofwd` (no X-Forwarded-For). And issue 15's list:
`server-close` (option http-server-close: a new server connection per request),
`abortonclose` (option abortonclose), `prefer-last` (option prefer-last-server: a
client connection's next request goes to the server of its last one while HAProxy holds
that connection, instead of round robin per request), and `control` (no HAProxy: direct
against direct). Later: `static-rr` (balance static-rr: no dynamic weights' tree to update
per request), `low-latency` (tune.sched.low-latency on), `http-lean` (HTTP mode without
both the layer-7 retries and X-Forwarded-For: the floor of HTTP mode as pinnace renders it,
not a candidate, since the retries are what HTTP mode is rendered for).
Issue 15's last list: `log` (pinnace's own connection logging on, to HAProxy's stderr),
`edge` (tune.fd.edge-triggered on: fewer epoll_ctl calls, experimental in 2.6), `nocheck`
(no health checks: what they cost).

Where HAProxy reaches the pods: at the ports they publish on 127.0.0.1 (pinnace's endpoint
without a pod network: the advertise address and the host port), so every request also
crosses Docker's userland proxy (docker-proxy) in front of the pod; or, in the `podip` and
`tcp-podip` variants, at the pods' own IPs on their bridge and port 80, as the master's
HAProxy has them from agents with `--pod-network` (the compose demo). The direct side of a
pair is the first pod's published port (through the same userland proxy), or with
`--direct pod-ip` its own IP: the like-for-like comparison for the pod-IP variants.
`direct-podip` (no HAProxy) is wrk to the pod's IP against the direct side: what the
userland proxy alone costs.

`--pin` gives the proxy a CPU of its own, as a cluster whose load balancer runs on its own
machine: HAProxy on the last CPU this process may use (`taskset`) at the lowest real-time
priority (`chrt --fifo 1`: the neighbours' processes on that CPU, on a shared machine, do
not keep it waiting; pinned alone, at load 10-28, it waited behind them at each of its two
wake-ups per request), and this process (so wrk), the nginx containers (their cpuset) and
Docker's port proxies in front of them on the others. The direct path then has the same
CPUs as without the proxy, and the ratio is what the hop costs a client, not what the
proxy's CPU takes from the pods.
Every container and HAProxy started here is removed or stopped by id/PID, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
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
from tests.support import free_port, haproxy_path

IMAGE = "nginx:latest"
LABEL = "pinnace.bench.lb-tuning"
COMMAND = "python -m tests.bench.lb_tuning"
BASE = LbSettings(listen_address="127.0.0.1")
ONE = replace(BASE, threads=1)
SPLICE = "option splice-auto"
EXPERIMENTAL = "expose-experimental-directives"
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
    # Words cut out of the default-server line (` check`: no health checks).
    drop_words: tuple[str, ...] = ()
    # The servers are the pods' own IPs on their bridge and the container port, as the
    # master's HAProxy has them from agents with --pod-network, instead of the ports
    # published on 127.0.0.1 (each a hop through Docker's userland proxy).
    pod_ip: bool = False


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
    "server-close": Variant(ONE, defaults_lines=("option http-server-close",)),
    "abortonclose": Variant(ONE, defaults_lines=("option abortonclose",)),
    "prefer-last": Variant(ONE, defaults_lines=("option prefer-last-server",)),
    "static-rr": Variant(ONE, defaults_lines=("balance static-rr",), drop=("balance roundrobin",)),
    "low-latency": Variant(ONE, global_lines=("tune.sched.low-latency on",)),
    "http-lean": Variant(ONE, drop=(*L7_RETRY, "option forwardfor")),
    "log": Variant(replace(ONE, log_connections=True)),
    "edge": Variant(ONE, global_lines=(EXPERIMENTAL, "tune.fd.edge-triggered on")),
    "nocheck": Variant(ONE, drop_words=(" check",)),
    "podip": Variant(ONE, pod_ip=True),
    "tcp-podip": Variant(ONE, mode="tcp", pod_ip=True),
}
# Not a HAProxy: the direct path measured against itself, the noise floor of a pair.
CONTROL = "control"
# Not a HAProxy either: wrk straight to the first pod's own IP and port 80, against the
# direct path (what Docker's userland proxy costs when the direct path is the published port).
BARE_POD_IP = "direct-podip"
PUBLISHED = "published"
POD_IP = "pod-ip"
NOT_HAPROXY = (CONTROL, BARE_POD_IP)
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
        if line.startswith("    default-server "):
            for word in variant.drop_words:
                line = line.replace(word, "", 1)
            if variant.server:
                line = f"{line} {variant.server}"
        out.append(line)
        if line == "global":
            out += [f"    {extra}" for extra in variant.global_lines]
        elif line == "defaults":
            out += [f"    {extra}" for extra in variant.defaults_lines]
    return "\n".join(out) + "\n"


def backend_endpoints(
    variant: Variant, ports: Sequence[int], ips: Sequence[str]
) -> tuple[Endpoint, ...]:
    """The servers of a variant's HAProxy (pure): each pod's port published on 127.0.0.1,
    or with `pod_ip` its own IP and nginx's port."""
    if variant.pod_ip:
        return tuple(Endpoint(f"web-{i}", ip, NGINX_PORT, True) for i, ip in enumerate(ips))
    return tuple(Endpoint(f"web-{i}", "127.0.0.1", p, True) for i, p in enumerate(ports))


def direct_target(direct: str, port: int, ip: str) -> tuple[str, int]:
    """Where the direct side of a pair goes (pure): the first pod's published port on
    127.0.0.1, or its own IP and nginx's port (`--direct pod-ip`)."""
    return (ip, NGINX_PORT) if direct == POD_IP else ("127.0.0.1", port)


def backend_millis(name: str) -> int:
    """`unlimited` -> 0, `500m` -> 500, `1` -> 1000; ValueError otherwise."""
    if name == UNLIMITED:
        return 0
    millis = int(name[:-1]) if name.endswith("m") else round(float(name) * 1000)
    if millis <= 0:
        raise ValueError(name)
    return millis


@dataclass(frozen=True, slots=True)
class Run:
    """One wrk run: what it got and the CPU spent meanwhile (seconds)."""

    rps: float
    requests: int
    haproxy_cpu: float  # the variant's HAProxy processes (0 for the direct path)
    path_cpu: float  # wrk, the nginx containers, Docker's port proxies: on both paths


@dataclass(frozen=True, slots=True)
class Pair:
    """A direct run and a run through a variant, back to back."""

    direct: Run
    proxied: Run

    @property
    def ratio(self) -> float:
        return self.proxied.rps / self.direct.rps

    @property
    def haproxy_us(self) -> float:
        """HAProxy's CPU per request answered through it, microseconds."""
        return self.proxied.haproxy_cpu / max(self.proxied.requests, 1) * 1e6

    @property
    def model_ratio(self) -> float | None:
        """Direct CPU per request over proxied CPU per request: the throughput ratio of a
        machine whose CPUs only these processes use (None without the path's CPU)."""
        direct = self.direct.path_cpu / max(self.direct.requests, 1)
        proxied = (self.proxied.path_cpu + self.proxied.haproxy_cpu) / max(self.proxied.requests, 1)
        return direct / proxied if direct > 0 and proxied > 0 else None


def own_cpu_prefix(cpu: int) -> list[str]:
    """The command prefix that gives HAProxy `cpu` as its own: pinned there, and at the lowest
    real-time priority, so a shared machine's other processes on that CPU do not keep it
    waiting (the kernel still leaves them 5% of it: sched_rt_runtime_us)."""
    return ["taskset", "-c", str(cpu), "chrt", "--fifo", "1"]


def split_cpus(cpus: set[int]) -> tuple[set[int], int] | None:
    """(the client's and pods' CPUs, HAProxy's CPU) for --pin: the last CPU for the proxy,
    the rest for the others; None with fewer than two CPUs (nothing to set apart)."""
    if len(cpus) < 2:
        return None
    proxy = max(cpus)
    return cpus - {proxy}, proxy


def pair_order(round_index: int, variant_index: int) -> tuple[bool, bool]:
    """(direct first?, then proxied?) as (True, False) or (False, True): ABAB across the
    variants of a round and flipped every round, so each variant gets both orders."""
    direct_first = (round_index + variant_index) % 2 == 0
    return (True, False) if direct_first else (False, True)


@dataclass(frozen=True, slots=True)
class Summary:
    """A variant at one connection count over its pairs: medians and worst cases."""

    pairs: int
    ratio: float
    ratio_worst: float
    direct_rps: float
    proxied_rps: float
    haproxy_us: float
    haproxy_us_worst: float
    model_ratio: float | None
    model_ratio_worst: float | None


def summarize(pairs: Sequence[Pair]) -> Summary:
    """Median and worst of a variant's pairs (worst: lowest ratio, most CPU)."""
    ratios = [p.ratio for p in pairs]
    spent = [p.haproxy_us for p in pairs]
    models = [m for p in pairs if (m := p.model_ratio) is not None]
    return Summary(
        pairs=len(pairs),
        ratio=statistics.median(ratios),
        ratio_worst=min(ratios),
        direct_rps=statistics.median(p.direct.rps for p in pairs),
        proxied_rps=statistics.median(p.proxied.rps for p in pairs),
        haproxy_us=statistics.median(spent),
        haproxy_us_worst=max(spent),
        model_ratio=statistics.median(models) if models else None,
        model_ratio_worst=min(models) if models else None,
    )


def figures_for(label: str, name: str, s: Summary) -> list[Figure]:
    """The table rows of one variant at one connection count."""
    n = f"median of {s.pairs} pairs"
    rows = [
        Figure(f"{label} {name} / direct", s.ratio, "ratio", f"{n}, worst {s.ratio_worst:.2f}"),
        # The two sides' own medians, so a ratio can be read against what each path served.
        Figure(f"{label} {name} req/s", s.proxied_rps, "req/s", f"direct {s.direct_rps:.0f}"),
    ]
    if name not in NOT_HAPROXY:
        rows.append(
            Figure(
                f"{label} {name} HAProxy CPU per request",
                s.haproxy_us,
                "us",
                f"{n}, worst {s.haproxy_us_worst:.1f}",
            )
        )
        if s.model_ratio is not None and s.model_ratio_worst is not None:
            rows.append(
                Figure(
                    f"{label} {name} CPU-model ratio",
                    s.model_ratio,
                    "ratio",
                    f"{n}, worst {s.model_ratio_worst:.2f}",
                )
            )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--variants",
        default="control,threads1,tcp",
        help=f"of {CONTROL},{BARE_POD_IP},{','.join(VARIANTS)}",
    )
    p.add_argument(
        "--direct",
        choices=(PUBLISHED, POD_IP),
        default=PUBLISHED,
        help="the direct side of each pair: the first pod's port published on 127.0.0.1 "
        "(through Docker's userland proxy; default) or its own IP and port 80",
    )
    p.add_argument("--connections", default="16,64", help="wrk -c values, comma-separated")
    p.add_argument("--rounds", type=int, default=9, help="pairs per variant and -c")
    p.add_argument("--seconds", type=int, default=2, help="wrk duration per side of a pair")
    p.add_argument(
        "--backends",
        default=f"{UNLIMITED},500m",
        help="backend sets: 'unlimited' (3 pods) and/or CPU limits like 500m (1 pod each)",
    )
    p.add_argument(
        "--pin",
        action="store_true",
        help="HAProxy on a CPU of its own, wrk and the pods on the others (taskset, cpuset)",
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
    unknown = [v for v in args.variant_names if v not in VARIANTS and v not in NOT_HAPROXY]
    if unknown or not args.variant_names:
        known = ",".join([*NOT_HAPROXY, *VARIANTS])
        p.error(f"--variants: unknown {','.join(unknown) or '(none)'}; known {known}")
    try:
        args.conns = [int(c) for c in args.connections.split(",") if c]
    except ValueError:
        p.error(f"--connections: expected integers, got {args.connections!r}")
    if args.rounds < 1 or args.seconds < 1 or not args.conns:
        p.error("--rounds, --seconds and --connections must be positive")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


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


def _container_cpu(cid: str) -> float:
    """A container's CPU seconds from its cgroup (v1 cpuacct or v2 cpu.stat); 0 if unseen."""
    for path in (
        Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage"),
        Path(f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage"),
    ):
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text()) / 1e9
    for path in (
        Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"),
        Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat"),
    ):
        with contextlib.suppress(OSError, ValueError):
            for line in path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
    return 0.0


def _processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, argv) of every process this one can see."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                raw = (entry / "cmdline").read_bytes().split(b"\0")
                yield int(entry.name), [a.decode(errors="replace") for a in raw if a]


def _port_proxies(ports: Sequence[int]) -> list[int]:
    """PIDs of Docker's userland proxies for these published ports (none with iptables only)."""
    wanted = {str(p) for p in ports}
    pids = []
    for pid, args in _processes():
        if args and args[0].endswith("docker-proxy"):
            for flag, value in itertools.pairwise(args):
                if flag == "-host-port" and value in wanted:
                    pids.append(pid)
    return pids


def helper_pids(
    processes: Iterable[tuple[int, Sequence[str]]], ids: Sequence[str], merged: Sequence[str]
) -> list[int]:
    """The processes that work for these containers outside their cgroups (pure): each one's
    containerd shim, found by the container id among its arguments (it copies the container's
    stdout to the engine: nginx's access log, a line a request), and its fuse-overlayfs mount,
    found by the merged dir it serves (with that storage driver every file nginx opens, the
    page each request, is a round trip through it). The pod pays for both on either path.
    """
    pids = []
    for pid, args in processes:
        if not args:
            continue
        name = args[0].rsplit("/", 1)[-1]
        shim = name.startswith("containerd-shim") and any(a in ids for a in args)
        mount = name == "fuse-overlayfs" and any(m and m in args for m in merged)
        if shim or mount:
            pids.append(pid)
    return pids


def _own_cpu(pid: int) -> float:
    """User + system CPU of `pid` alone (a shim's children are the container: its cgroup)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _helpers(client: docker.DockerClient, ids: Sequence[str]) -> list[int]:
    merged = []
    for cid in ids:
        data = client.api.inspect_container(cid).get("GraphDriver", {}).get("Data") or {}
        merged.append(str(data.get("MergedDir", "")))
    return helper_pids(_processes(), ids, merged)


def _wrk_cpu() -> float:
    """CPU seconds of the waited-for children so far: wrk's, run after run."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _answers(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
        return True
    return False


def _container_ip(client: docker.DockerClient, cid: str) -> str:
    """The container's IP on its bridge ("" if it has none)."""
    networks = client.api.inspect_container(cid)["NetworkSettings"].get("Networks") or {}
    return next((str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress")), "")


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


def pin_backends(
    client: docker.DockerClient, ids: Sequence[str], ports: Sequence[int], cpus: set[int]
) -> None:
    """The pods' containers and their port proxies (started for them, found by port) on
    `cpus` only, apart from HAProxy's CPU."""
    cpuset = ",".join(str(c) for c in sorted(cpus))
    for cid in ids:
        client.api.update_container(cid, cpuset_cpus=cpuset)
    for pid in _port_proxies(ports):
        os.sched_setaffinity(pid, cpus)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    haproxy = haproxy_path()
    if haproxy is None or not wrk_available():
        print(WRK_MISSING if haproxy else "haproxy is not installed", file=sys.stderr)
        return 1
    pinned = split_cpus(os.sched_getaffinity(0)) if args.pin else None
    if args.pin and (pinned is None or not (shutil.which("taskset") and shutil.which("chrt"))):
        print("--pin needs two CPUs or more, taskset and chrt (util-linux)", file=sys.stderr)
        return 1
    client = docker.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-lb-tuning-"))
    run = workdir.name[-6:].lower().replace("_", "x")
    runtime = DockerRuntime(f"lbtuning{run}")
    procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
    started: list[str] = []  # removed by id at the end, whatever happens
    backend_ids: dict[str, list[str]] = {}
    backend_ports: dict[str, list[int]] = {}
    listen: dict[tuple[str, str], int] = {}
    haproxies = [n for n in args.variant_names if n not in NOT_HAPROXY]
    # Where wrk sends each side: (host, port) by (target, backend); "direct" is the direct side.
    targets: dict[tuple[str, str], tuple[str, int]] = {}
    try:
        for backend, millis in zip(args.backend_names, args.backend_millis, strict=True):
            ids, ports = start_backends(runtime, run, backend, millis)
            started += ids
            if pinned:
                pin_backends(client, ids, ports, pinned[0])
            backend_ids[backend], backend_ports[backend] = ids, ports
            ips = [_container_ip(client, cid) for cid in ids]
            for port in ports:
                wait_until(f"nginx on 127.0.0.1:{port}", functools.partial(_answers, port), 30)
            for ip in ips:
                if not ip:
                    raise BenchError("a backend container has no IP on its bridge")
                wait_until(
                    f"nginx on {ip}:{NGINX_PORT}",
                    functools.partial(_answers, NGINX_PORT, ip),
                    30,
                )
            targets[("direct", backend)] = direct_target(args.direct, ports[0], ips[0])
            targets[(BARE_POD_IP, backend)] = direct_target(POD_IP, ports[0], ips[0])
            targets[(CONTROL, backend)] = targets[("direct", backend)]
            for name in haproxies:
                key = (name, backend)
                listen[key] = free_port()
                targets[key] = ("127.0.0.1", listen[key])
                endpoints = backend_endpoints(VARIANTS[name], ports, ips)
                svc = LbService("web", "http", listen[key], endpoints, mode="http")
                cfg = workdir / f"{name}-{backend}.cfg"
                cfg.write_text(
                    haproxy_config(VARIANTS[name], svc, workdir / f"{name}-{backend}.sock")
                )
                log = (workdir / f"{name}-{backend}.log").open("wb")
                taskset = own_cpu_prefix(pinned[1]) if pinned else []
                procs[key] = subprocess.Popen(
                    [*taskset, haproxy, "-db", "-f", str(cfg)],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
                wait_until(f"HAProxy {name}", functools.partial(_answers, listen[key]), 30)
        if pinned:
            # wrk inherits it; HAProxy was started on its own CPU before.
            os.sched_setaffinity(0, pinned[0])
        pairs: dict[tuple[str, str, int], list[Pair]] = {}
        loads: list[float] = []

        def measure(target: str, backend: str, c: int) -> Run:
            proc = procs.get((target, backend))
            host, port = targets[(target, backend)]
            proxies = _port_proxies(backend_ports[backend])
            helpers = _helpers(client, backend_ids[backend])

            def path_cpu() -> float:
                return (
                    _wrk_cpu()
                    + sum(_container_cpu(cid) for cid in backend_ids[backend])
                    + sum(_cpu_seconds(pid) for pid in proxies)
                    + sum(_own_cpu(pid) for pid in helpers)
                )

            haproxy_before, path_before = (_cpu_seconds(proc.pid) if proc else 0.0), path_cpu()
            result = run_wrk(port, args.seconds, 2, c, host)
            if result.errors:
                raise BenchError(f"wrk saw {result.errors} errors through {target}")
            return Run(
                result.requests_per_second,
                result.requests,
                (_cpu_seconds(proc.pid) - haproxy_before) if proc else 0.0,
                path_cpu() - path_before,
            )

        for r in range(args.rounds):
            for backend in args.backend_names:
                for c in args.conns:
                    for i, name in enumerate(args.variant_names):
                        direct_first, _ = pair_order(r, i)
                        if direct_first:
                            first = measure("direct", backend, c)
                            pair = Pair(first, measure(name, backend, c))
                        else:
                            proxied = measure(name, backend, c)
                            pair = Pair(measure("direct", backend, c), proxied)
                        pairs.setdefault((name, backend, c), []).append(pair)
            loads.append(os.getloadavg()[0])
            print(f"  round {r + 1}/{args.rounds}, load {loads[-1]:.1f}", file=sys.stderr)
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
            direct_rps = [p.direct.rps for n in args.variant_names for p in pairs[(n, backend, c)]]
            figures.append(
                Figure(
                    f"[{pods}] direct -c{c}",
                    statistics.median(direct_rps),
                    "req/s",
                    f"median of {len(direct_rps)}, worst {min(direct_rps):.0f}",
                )
            )
            for name in args.variant_names:
                summary = summarize(pairs[(name, backend, c)])
                figures += figures_for(f"[{pods}] -c{c}", name, summary)
    print(
        f"load average {load} (1-minute load after each round: "
        f"{', '.join(f'{x:.1f}' for x in loads)}); "
        f"{args.rounds} rounds of pairs of wrk -t2 -d{args.seconds}s, order alternating; "
        f"direct side: {'the pod IP' if args.direct == POD_IP else 'the published port'}"
        + (f"; HAProxy on CPU {pinned[1]}, wrk and pods on {sorted(pinned[0])}" if pinned else "")
    )
    print(table(figures))
    if not args.no_record:
        record(figures, f"{COMMAND} {' '.join(sys.argv[1:] if argv is None else argv)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
