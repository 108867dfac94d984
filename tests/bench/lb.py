"""Benchmark: pinnace's load balancer (a real HAProxy) against one pod and Swarm's routing mesh.

Run as `python -m tests.bench.lb`. One pinnace master (HAProxy on a free 127.0.0.1 port, via
`--lb-port-offset`) and two agents on this machine get the seed deployment and service
unchanged; then four measurements print as tables:

1. throughput: wrk for a bounded time straight to one pod's published port, then through
   HAProxy (same wrk flags, same run); later the same through Swarm's routing mesh; and the
   ratio that a busy machine does not move as much: `--wrk-pairs` rounds of short runs back
   to back, one straight to the pod's published port (Docker's userland proxy carries it:
   loopback is left out of Docker's NAT), one straight to the pod's own IP and container port
   (no proxy: the like-for-like direct path, since the master's HAProxy reaches pods of
   loopback nodes there, master/lb/endpoints.py `lb_address`) and one through HAProxy, their
   order changing every round; ratios against both direct paths (median and worst);
2. timing: under a fixed-rate stream through the LB, repeated scale-ups (5 pods) and
   scale-downs (3): from the master showing a new pod ready to the first request it answers, and
   from the scale-down request to the last request a removed pod answers;
3. disruptions, each under its own fixed-rate stream of at least N requests (`lb_load`, in its
   own process): a rolling update to pinnace/httpd:latest and back, scale 5 -> 2, `docker kill`
   of a pod, and the death of a node (kill -9 of its agent, its containers removed);
4. Swarm (only when the engine is in no swarm): a 3-replica nginx service on the routing mesh,
   wrk through it, and `docker service update --image` (there and back) under the same stream.

Pods are told apart by the hostname nginx prints (a pod's name; a swarm task's container id).
Everything started is stopped by PID, container id/label, or by leaving the swarm this run
created, also on Ctrl-C and SIGTERM. Exit status 1 when a part failed to run (the reason is
printed), not when a number misses its target: the tables mark those.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import docker

from tests.bench import lb_report
from tests.bench.engine import BenchError, docker_cli, machine_info
from tests.bench.lb_cluster import DEPLOYMENT, LbCluster, PodWatch, free_port
from tests.bench.lb_load import LoadProcess
from tests.bench.lb_report import Disruption
from tests.bench.lb_swarm import MeshSession
from tests.bench.lb_tuning import pair_order
from tests.bench.lb_wrk import WRK_MISSING, WrkError, WrkResult, run_wrk, wrk_available
from tests.support import SEED, haproxy_path

NGINX = "nginx:latest"
HTTPD = "pinnace/httpd:latest"
ERRORS = (BenchError, WrkError, docker.errors.APIError, subprocess.TimeoutExpired)


@dataclass(slots=True)
class Results:
    throughput: list[tuple[str, WrkResult | str]] = field(default_factory=list)
    ready_to_first: list[float | None] = field(default_factory=list)
    removal_to_last: list[float | None] = field(default_factory=list)
    disruptions: list[Disruption | tuple[str, str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.lb",
        description="pinnace's HAProxy vs one pod vs Swarm's routing mesh: throughput, "
        "readiness/removal timing, failed requests during disruptions.",
    )
    p.add_argument("--wrk-seconds", type=int, default=10, help="wrk duration per target")
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--wrk-connections", type=int, default=16)
    p.add_argument("--wrk-pairs", type=int, default=9, help="direct/LB pairs for the ratio")
    p.add_argument("--pair-seconds", type=int, default=2, help="wrk duration per side of a pair")
    p.add_argument("--timing-trials", type=int, default=4, help="scale-up/down rounds")
    p.add_argument("--timing-rate", type=float, default=300.0, help="req/s during timing")
    p.add_argument("--rate", type=float, default=250.0, help="req/s during disruptions")
    p.add_argument("--requests", type=int, default=10_000, help="min requests per disruption")
    p.add_argument("--no-swarm", action="store_true", help="skip the Swarm rows")
    p.add_argument("--keep", action="store_true", help="keep the tmp dir (logs, records)")
    p.add_argument(
        "--compare",
        type=Path,
        help="another pinnace tree (git archive of a commit): its own master, agents and pods"
        " beside this tree's, its HAProxy a fourth target in every round (with"
        " --only-throughput)",
    )
    p.add_argument(
        "--only-throughput",
        action="store_true",
        help="measure throughput only (no timing, disruptions or Swarm)",
    )
    args = p.parse_args(argv)
    if args.wrk_pairs < 1 or args.pair_seconds < 1:
        p.error("--wrk-pairs and --pair-seconds must be positive")
    if args.compare is not None:
        if not args.only_throughput:
            p.error("--compare needs --only-throughput")
        if not (args.compare / "master" / "cli" / "main.py").is_file():
            p.error(f"--compare {args.compare}: not a pinnace tree (no master/cli/main.py)")
    if args.rate <= 0 or args.timing_rate <= 0 or args.requests < 1 or args.timing_trials < 1:
        p.error("--rate, --timing-rate, --requests and --timing-trials must be positive")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _check(client: docker.DockerClient) -> str | None:
    if haproxy_path() is None:
        return "haproxy is not installed: `apt-get install -y haproxy` (Debian's 2.6)"
    try:
        client.ping()
        for image in (NGINX, HTTPD):
            client.images.get(image)
    except docker.errors.ImageNotFound as e:
        return f"an image is missing ({e.explanation}): run `make images`"
    except Exception as e:  # the SDK raises several types for "no engine"
        return f"no Docker engine: {e}"
    return None


def _manifest(workdir: Path, image: str, replicas: int) -> Path:
    text = (SEED / "deployment.yaml").read_text()
    path = workdir / f"deployment-{image.replace('/', '_').replace(':', '_')}-{replicas}.yaml"
    path.write_text(
        text.replace("replicas: 3", f"replicas: {replicas}").replace(
            "image: nginx:latest", f"image: {image}"
        )
    )
    return path


def _await(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


# -- 1. throughput --------------------------------------------------------------------------


def measure_throughput(
    cluster: LbCluster, args: argparse.Namespace, out: Results, other: LbCluster | None = None
) -> None:
    """Long runs one after the other, then the ratio rounds (`rounds`); `other`: the
    --compare tree's cluster, whose HAProxy joins every round."""
    if not wrk_available():
        print(WRK_MISSING, file=sys.stderr)
        out.notes.append(WRK_MISSING)
        return
    pod = cluster.wait_ready(3, 60)[0]
    pod_port = int(pod["status"]["endpoints"][0].rsplit(":", 1)[1])
    for target, port in (
        (f"one pod direct (127.0.0.1:{pod_port})", pod_port),
        (f"pinnace HAProxy, 3 pods (127.0.0.1:{cluster.lb_port})", cluster.lb_port),
    ):
        print(f"  wrk {args.wrk_seconds}s -> {target}", flush=True)
        try:
            result: WrkResult | str = _wrk(args, port)
        except WrkError as e:
            result = str(e)
            out.failures.append(f"throughput {target}: {e}")
        out.throughput.append((target, result))
    pod_ip = pod_bridge_ip(cluster.client, pod["metadata"]["name"])
    runs = f"wrk -t{args.wrk_threads} -c{args.wrk_connections} -d{args.pair_seconds}s"
    try:
        if not pod_ip:
            out.notes.append("the pod has no bridge IP: no pod-IP direct path (pairs only)")
            ratios = paired_ratios(args, pod_port, cluster.lb_port)
            out.notes.append(
                f"through HAProxy / one pod direct, {len(ratios)} pairs of {runs} back to back,"
                f" order alternating: {_spread(ratios)}"
            )
            return
        direct, own, proxied = (LOOPBACK, pod_port), (pod_ip, 80), (LOOPBACK, cluster.lb_port)
        targets = [direct, own, proxied]
        if other is not None:
            targets.append((LOOPBACK, other.lb_port))
        found = rounds(args, targets)
    except WrkError as e:
        out.failures.append(f"throughput pairs: {e}")
        return
    names = "published port, pod IP, HAProxy" + (", --compare's HAProxy" if other else "")
    lines = [
        f"{len(found)} rounds of {runs}, one run a target back to back ({names}; pod IP"
        f" {pod_ip}:80), order changing every round:",
        "through HAProxy / the pod's published port (issue 15's ratio): "
        + _spread([r[proxied] / r[direct] for r in found]),
        "through HAProxy / the pod's own IP (like for like): "
        + _spread([r[proxied] / r[own] for r in found]),
        "the pod's own IP / its published port (Docker's userland proxy): "
        + _spread([r[own] / r[direct] for r in found]),
    ]
    if other is not None:
        theirs = targets[3]
        lines += [
            f"--compare {args.compare}'s HAProxy (its own 3 pods) / this tree's pod's published"
            " port: " + _spread([r[theirs] / r[direct] for r in found]),
            "--compare's HAProxy / the pod's own IP: "
            + _spread([r[theirs] / r[own] for r in found]),
            "this tree's HAProxy / --compare's: "
            + _spread([r[proxied] / r[theirs] for r in found]),
        ]
    lines.append(
        "requests/s a target, median of the rounds: "
        + ", ".join(f"{statistics.median(r[t] for r in found):,.0f}" for t in targets)
    )
    out.notes.append("\n  ".join(lines))


def _spread(ratios: Sequence[float]) -> str:
    return (
        f"median {statistics.median(ratios):.2f}, worst {min(ratios):.2f}"
        f" (each: {', '.join(f'{r:.2f}' for r in ratios)})"
    )


LOOPBACK = "127.0.0.1"
# (host, port) wrk is pointed at.
Target = tuple[str, int]


def pod_bridge_ip(client: docker.DockerClient, pod: str) -> str:
    """The pod's IP on this machine's bridge: its container's, or with a pod sandbox its
    holder's, whose network namespace the container joins ("" if none)."""
    for summary in client.api.containers(filters={"label": f"pinnace.pod={pod}"}):
        attrs = client.api.inspect_container(summary["Id"])
        mode = str(attrs["HostConfig"].get("NetworkMode") or "")
        if mode.startswith("container:"):
            attrs = client.api.inspect_container(mode.partition(":")[2])
        networks = attrs["NetworkSettings"].get("Networks") or {}
        found = next((str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress")), "")
        if found:
            return found
    return ""


def rotated_ratios(
    args: argparse.Namespace, direct: Target, pod_ip: Target, proxied: Target
) -> tuple[list[float], list[float], list[float]]:
    """Per round, proxied / direct, proxied / pod_ip and pod_ip / direct (`rounds`)."""
    found = rounds(args, (direct, pod_ip, proxied))
    return (
        [r[proxied] / r[direct] for r in found],
        [r[proxied] / r[pod_ip] for r in found],
        [r[pod_ip] / r[direct] for r in found],
    )


def round_order(targets: Sequence[Target], index: int) -> list[Target]:
    """Round `index`'s order: the targets rotated by one a round, reversed every other
    cycle, so each target runs in each position and after each other one (for three
    targets, all six orders in six rounds)."""
    n = len(targets)
    order = [targets[(index + k) % n] for k in range(n)]
    return order[::-1] if (index // n) % 2 else order


def rounds(args: argparse.Namespace, targets: Sequence[Target]) -> list[dict[Target, float]]:
    """`--wrk-pairs` rounds of one short wrk run a target, back to back (`round_order`):
    requests/s by target, round by round. Ratios are taken inside a round, seconds apart,
    never across rounds, so a neighbour's burst hits every side alike (as `paired_ratios`
    does for two)."""
    found = []
    for i in range(args.wrk_pairs):
        found.append(
            {
                target: run_wrk(
                    target[1], args.pair_seconds, args.wrk_threads, args.wrk_connections, target[0]
                ).requests_per_second
                for target in round_order(targets, i)
            }
        )
    return found


def paired_ratios(args: argparse.Namespace, direct: int, proxied: int) -> list[float]:
    """Throughput through HAProxy over direct, pair by pair: the two runs of a pair are
    seconds apart and their order alternates (tests/bench/lb_tuning.py `pair_order`), so a
    busy neighbour hits both sides alike; the single long runs above are not comparable on
    a shared machine."""
    ratios = []
    for i in range(args.wrk_pairs):
        direct_first, _ = pair_order(i, 0)
        order = (direct, proxied) if direct_first else (proxied, direct)
        rps = {
            port: run_wrk(
                port, args.pair_seconds, args.wrk_threads, args.wrk_connections
            ).requests_per_second
            for port in order
        }
        ratios.append(rps[proxied] / rps[direct])
    return ratios


def _wrk(args: argparse.Namespace, port: int) -> WrkResult:
    return run_wrk(port, args.wrk_seconds, args.wrk_threads, args.wrk_connections)


# -- 2. ready -> first request, removal -> last request ---------------------------------------


def measure_timing(
    cluster: LbCluster, args: argparse.Namespace, workdir: Path, out: Results
) -> None:
    watch = cluster.pod_watch
    cluster.wait_ready(3, 60)
    bound = args.timing_trials * 60 + 60
    load = LoadProcess(cluster.lb_port, args.timing_rate, 0, bound, workdir / "timing.tsv")
    arrivals: list[tuple[str, float]] = []  # (host, ready_at)
    removals: list[tuple[str, float]] = []  # (host, asked)
    try:
        time.sleep(1.0)  # the stream is steady before the first change
        for trial in range(1, args.timing_trials + 1):
            asked = cluster.scale(5)
            cluster.wait_ready(5, 60)
            hosts = cluster.hosts_by_pod()
            new = [n for n, t in watch.added_at.items() if t >= asked and n in watch.ready_at]
            arrivals += [(hosts[n], watch.ready_at[n]) for n in new if n in hosts]
            time.sleep(1.0)  # room for the first requests (the target is < 1 s)
            asked_down = cluster.scale(3)
            _await(
                "the removed pods to appear",
                lambda: len(_removed(watch, asked_down)) >= 2,  # noqa: B023 - waited on here
                30,
            )
            removed = _removed(watch, asked_down)
            for name in removed:
                _await(f"pod {name}'s container to go", cluster.pod_gone(name), 60)
            cluster.wait_ready(3, 60)
            removals += [(hosts[n], asked_down) for n in removed if n in hosts]
            time.sleep(1.0)
            print(f"  timing round {trial}: +{len(new)} ready, -{len(removed)} removed", flush=True)
        records = load.finish()
    finally:
        load.kill()
    out.ready_to_first += [lb_report.first_answer_after(records, h, t) for h, t in arrivals]
    out.removal_to_last += [lb_report.last_answer_after(records, h, t) for h, t in removals]
    failed = sum(1 for r in records if not r.ok)
    out.notes.append(
        f"timing stream: {len(records):,} requests at {args.timing_rate:.0f}/s, {failed} failed"
    )


def _removed(watch: PodWatch, asked: float) -> list[str]:
    """Pods whose removal the master began after `asked`."""
    return [n for n, t in list(watch.removing_at.items()) if t >= asked]


# -- 3. disruptions -------------------------------------------------------------------------


def under_load(
    system: str,
    what: str,
    port: int,
    args: argparse.Namespace,
    out_file: Path,
    action: Callable[[], None],
) -> Disruption:
    """Run `action` inside a fixed-rate stream of at least args.requests requests."""
    bound = max(args.requests / args.rate * 4, 300.0)
    load = LoadProcess(port, args.rate, args.requests, bound, out_file)
    try:
        time.sleep(2.0)  # steady traffic before the disruption
        start = time.monotonic()
        action()
        took = time.monotonic() - start
        time.sleep(2.0)  # and after it settled
        records = load.finish()
    finally:
        load.kill()
    d = Disruption(system, what, tuple(records), took)
    print(f"  {system} {what}: {d.failed} failed of {d.sent:,} ({took:.1f} s)", flush=True)
    return d


def measure_disruptions(
    cluster: LbCluster, args: argparse.Namespace, workdir: Path, out: Results
) -> None:
    watch = cluster.pod_watch
    cluster.scale(5)
    cluster.wait_ready(5, 90)

    def rollout() -> None:
        for image in (HTTPD, NGINX):
            cluster.cli("apply", "-f", str(_manifest(workdir, image, 5)))
            cluster.cli("rollout", "status", f"deployment/{DEPLOYMENT}", "--timeout", "180")
            cluster.wait_ready(5, 120, image=image)

    def scale_down() -> None:
        asked = cluster.scale(2)
        cluster.wait_ready(2, 90)
        for name in _removed(watch, asked):
            _await(f"pod {name}'s container to go", cluster.pod_gone(name), 60)

    def kill_pod() -> None:
        victim = cluster.containers()[0]
        pod = (victim.get("Labels") or {})["pinnace.pod"]
        docker_cli("kill", victim["Id"])

        def restarted() -> bool:
            for p in cluster.pod_watch.ready_pods():
                if p["metadata"]["name"] == pod:
                    statuses = p["status"].get("containerStatuses", [])
                    return any(c.get("restartCount", 0) >= 1 for c in statuses)
            return False

        _await(f"pod {pod} restarted and ready", restarted, 60)
        cluster.wait_ready(3, 60)

    def node_death() -> None:
        pods = cluster.wait_ready(3, 60)
        per_node = {
            n: sum(1 for p in pods if p["spec"]["nodeName"] == n) for n in cluster.node_names
        }
        dead = max(per_node, key=lambda n: per_node[n])
        survivor = next(n for n in cluster.node_names if n != dead)
        print(f"    killing node {dead} ({per_node[dead]} of 3 pods)", flush=True)
        cluster.kill_node(dead)
        _await(
            "3 ready pods on the surviving node",
            lambda: (
                [p["spec"]["nodeName"] for p in cluster.pod_watch.ready_pods()].count(survivor) == 3
                and len(cluster.pod_watch.snapshot()) == 3
            ),
            180,
        )

    steps: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        (f"rolling update {NGINX} -> {HTTPD} -> back, 5 pods", lambda: None, rollout),
        ("scale 5 -> 2", lambda: None, scale_down),
        ("docker kill of a pod (3 pods)", lambda: _rescale(cluster, 3), kill_pod),
        ("node death (kill -9 agent + its containers)", lambda: None, node_death),
    ]
    for i, (what, prepare, action) in enumerate(steps):
        try:
            prepare()
            out.disruptions.append(
                under_load("pinnace", what, cluster.lb_port, args, workdir / f"d{i}.tsv", action)
            )
        except ERRORS as e:
            out.disruptions.append(("pinnace", what, f"did not run: {e}"))
            out.failures.append(f"pinnace {what}: {e}")
            return  # later steps assume this one's end state


def _rescale(cluster: LbCluster, n: int) -> None:
    cluster.scale(n)
    cluster.wait_ready(n, 90)


# -- 4. Swarm --------------------------------------------------------------------------------


def measure_swarm(
    client: docker.DockerClient, run_id: str, args: argparse.Namespace, workdir: Path, out: Results
) -> None:
    what = f"service update --image {HTTPD} -> back, 3 replicas"
    session = MeshSession(client)
    try:
        skip = session.start()
        if skip:
            out.notes.append(f"swarm: skipped: {skip}")
            return
        name, port = f"lb-bench-{run_id}", free_port()
        session.create_published(name, 3, port)
        session.wait_running(name, 3, 120)
        problem = session.mesh_problem(name, port, 30)
        if problem:
            out.notes.append(f"swarm: {problem}")
            out.throughput.append(("swarm routing mesh", "mesh unreachable"))
            out.disruptions.append(("swarm", what, "mesh unreachable"))
            return
        if wrk_available():
            target = f"swarm routing mesh, 3 tasks (127.0.0.1:{port})"
            print(f"  wrk {args.wrk_seconds}s -> {target}", flush=True)
            out.throughput.append((target, _wrk(args, port)))

        def update() -> None:
            for image in (HTTPD, NGINX):
                session.update_image(name, image, timeout=300)

        out.disruptions.append(under_load("swarm", what, port, args, workdir / "swarm.tsv", update))
    except ERRORS as e:
        out.failures.append(f"swarm: {e}")
        out.disruptions.append(("swarm", what, f"did not run: {e}"))
    finally:
        session.close()


# -- main -------------------------------------------------------------------------------------


def print_report(out: Results, args: argparse.Namespace) -> None:
    print()
    print(
        "1. throughput and latency, wrk "
        f"-t{args.wrk_threads} -c{args.wrk_connections} -d{args.wrk_seconds}s (keep-alive)"
    )
    if out.throughput:
        print(lb_report.throughput_table(out.throughput))
    if not args.only_throughput:
        _print_timing_and_disruptions(out, args)
    for note in out.notes:
        print(f"note: {note}")
    for failure in out.failures:
        print(f"FAILED: {failure}")


def start_seed(cluster: LbCluster) -> None:
    """Master and agents up, the seed applied, every pod answering through HAProxy."""
    cluster.start(timeout=60)
    cluster.cli("apply", "-f", str(SEED))
    cluster.wait_ready(3, 120)
    cluster.wait_lb_serves(60)


def _print_timing_and_disruptions(out: Results, args: argparse.Namespace) -> None:
    print()
    print("2. seconds from the master showing a pod ready to its first answer through the LB,")
    print("   and from a scale-down request to the last answer from a removed pod")
    print(
        lb_report.timing_table(
            [
                ("ready -> first request via LB", out.ready_to_first),
                ("removal request -> last request", out.removal_to_last),
            ]
        )
    )
    print()
    print(
        f"3./4. failed requests during disruptions (fixed-rate stream, new connection each,"
        f" >= {args.requests:,} requests at {args.rate:.0f}/s)"
    )
    print(lb_report.disruption_table(out.disruptions))
    for d in out.disruptions:
        if isinstance(d, Disruption):
            for line in lb_report.failure_summary(d):
                print(line)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    client = docker.from_env()
    problem = _check(client)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    run_id = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix=f"pinnace-bench-lb-{run_id}-"))
    info = machine_info(client)
    haproxy = subprocess.run(
        [haproxy_path() or "haproxy", "-v"], capture_output=True, text=True
    ).stdout
    print(
        f"machine: {os.cpu_count()} CPUs (nproc), {platform.platform()}, Python "
        f"{platform.python_version()}; Docker {info['docker']}; "
        f"{haproxy.splitlines()[0] if haproxy else 'haproxy ?'}"
    )
    print(f"run id {run_id}; tmp dir {workdir}", flush=True)
    began = time.monotonic()
    out = Results()
    cluster = LbCluster(client, run_id, workdir)
    other: LbCluster | None = None
    try:
        try:
            start_seed(cluster)
            print(f"pinnace: master {cluster.address}, LB 127.0.0.1:{cluster.lb_port}", flush=True)
            if args.compare is not None:
                (workdir / "compare").mkdir()
                other = LbCluster(client, f"{run_id}c", workdir / "compare", args.compare)
                start_seed(other)
                print(f"--compare: master {other.address}, LB 127.0.0.1:{other.lb_port}")
            measure_throughput(cluster, args, out, other)
            if not args.only_throughput:
                measure_timing(cluster, args, workdir, out)
                measure_disruptions(cluster, args, workdir, out)
        except ERRORS as e:
            out.failures.append(f"pinnace: {e}")
            print(f"pinnace: failed: {e}", file=sys.stderr)
        finally:
            cluster.close()
            if other is not None:
                other.close()
        if not (args.no_swarm or args.only_throughput):
            measure_swarm(client, run_id, args, workdir, out)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        raise
    finally:
        cluster.close()
        if other is not None:
            other.close()
        client.close()
        if out.failures or args.keep:
            print(f"logs and records kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report(out, args)
    print(f"\nrun time {time.monotonic() - began:.0f} s")
    return 1 if out.failures else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
