"""Multi-tier real applications, end to end: unmodified manifests on a real cluster, answering.

Run as `.venv/bin/python -m tests.bench.apps [--apps guestbook,voting,podinfo] [--runs 3]`
(root: node proxies and cluster DNS add routes; a Docker engine; debootstrap for the images).

For each application of tests/fixtures/real-manifests/ listed in APPS, and each run: a fresh
master (`--no-lb`, a random /24 `--service-cidr` of its own) and two agents with node proxies
and cluster DNS (`--cluster-dns=auto`), the application's files applied one by one with
`pinnace apply -f` exactly as they are, then, from this machine through the Services' cluster
IPs as a user inside the cluster would:

- guestbook: a message set through the frontend Service (`guestbook.php?cmd=set`, which
  writes to the Service redis-master) and read back through it (`cmd=get`, which reads from
  the Service redis-replica: a follower answers); both followers report their link to the
  leader up;
- voting: three votes (two voters for a, one for b, each with its own voter_id cookie)
  POSTed to the vote Service, then the result Service polled until it counts them (the
  worker moved them from Redis to PostgreSQL);
- podinfo (its webapp: namespace webapp, a frontend and a backend): a text POSTed to the
  frontend Service's /api/echo comes back as the backend's echo (the frontend calls
  http://backend:9898/echo, a name of its own namespace).

The images are the stand-ins `compose/images/build.sh guestbook voting podinfo` makes (built first,
outside the timing; compose/images/standins/README.md). Printed: one table -- app, files,
pods Running of pods made, how many nodes they ran on, answered (runs), time from the first
`apply` to the answer and to all pods Running (median of the runs, worst beside it) -- and
the load average before and after. One JSON line per app and figure goes to
tests/bench/results.jsonl unless `--no-record`. Everything started is stopped by PID or
container id, the routes removed, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import yaml

from agent.dns.server import DEFAULT_DIR as DNS_DIR
from agent.dns.server import stop_node_dns
from tests.bench.engine import BenchError, wait_until
from tests.bench.procs import PinnaceProcs
from tests.bench.results import Figure, record

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "real-manifests"
BUILD = REPO / "compose" / "images" / "build.sh"
HTTP_TIMEOUT = 5.0


# -- talking to an application -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    status: int  # 0: no answer (refused, reset, timed out)
    body: str
    cookie: str = ""


def request(
    method: str,
    host: str,
    port: int,
    path: str,
    form: dict[str, str] | None = None,
    cookie: str = "",
    body: bytes | None = None,
) -> Reply:
    """One HTTP request on a new connection (a form, else `body`, as the request's body);
    never raises for a network failure."""
    headers = {"Connection": "close"}
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        headers["Content-Type"] = "text/plain"
    if cookie:
        headers["Cookie"] = cookie
    conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
        return Reply(response.status, text, response.getheader("Set-Cookie") or "")
    except (OSError, http.client.HTTPException) as e:
        return Reply(0, str(e))
    finally:
        conn.close()


def json_of(reply: Reply) -> Any:
    """The reply's JSON body, or None when it is not a 200 with JSON."""
    if reply.status != 200:
        return None
    try:
        return json.loads(reply.body)
    except ValueError:
        return None


@dataclass
class Cluster:
    """What a driver needs from the cluster: a Service's cluster IP, the app's containers."""

    cluster_ip: Callable[[str], str]  # of "NAME" (namespace default) or "NAMESPACE/NAME"
    containers: Callable[[str], list[Any]]  # running containers of pods named PREFIX-...


def guestbook(cluster: Cluster, deadline: float, value: str = "") -> str:
    """Set a message (`value`, else a new one) through the frontend Service, read it back;
    "" when it answered, else what did not. The read goes to redis-replica: a follower
    serves it."""
    frontend = cluster.cluster_ip("frontend")
    value = value or f"hello-from-pinnace-{uuid.uuid4().hex[:8]}"
    query = urllib.parse.urlencode({"cmd": "set", "key": "messages", "value": value})
    last = Reply(0, "not asked")
    while time.monotonic() < deadline:
        last = request("GET", frontend, 80, f"/guestbook.php?{query}")
        if json_of(last) == {"message": "Updated"}:
            break
        time.sleep(0.5)
    else:
        return f"set: {last.status} {last.body[:120]}"
    while time.monotonic() < deadline:
        last = request("GET", frontend, 80, "/guestbook.php?cmd=get&key=messages")
        if json_of(last) == {"data": value}:
            return ""
        time.sleep(0.2)
    return f"get: {last.status} {last.body[:120]}"


def followers_linked(cluster: Cluster) -> str:
    """Empty when every guestbook follower says its link to the leader is up, else who is not."""
    followers = cluster.containers("redis-replica-")
    if not followers:
        return "no follower container"
    for container in followers:
        _, out = container.exec_run(["redis-cli", "info", "replication"])
        info = out.decode(errors="replace")
        if "role:slave" not in info or "master_link_status:up" not in info:
            return f"follower {container.name}: {info.strip()[:160]}"
    return ""


VOTES = (("voter-1", "a"), ("voter-2", "a"), ("voter-3", "b"))


def voting(cluster: Cluster, deadline: float) -> str:
    """Cast VOTES through the vote Service, wait until the result Service counts them."""
    vote, result = cluster.cluster_ip("vote"), cluster.cluster_ip("result")
    tag = uuid.uuid4().hex[:6]
    for voter, choice in VOTES:
        last = Reply(0, "not asked")
        while time.monotonic() < deadline:
            last = request("POST", vote, 8080, "/", {"vote": choice}, f"voter_id={voter}-{tag}")
            if last.status == 200:
                break
            time.sleep(0.5)
        else:
            return f"vote: {last.status} {last.body[:120]}"
    wanted = {"a": 2, "b": 1}
    while time.monotonic() < deadline:
        last = request("GET", result, 8081, "/scores")
        if json_of(last) == wanted:
            return ""
        time.sleep(0.2)
    return f"result: {last.status} {last.body[:120]} (wanted {wanted})"


def podinfo(cluster: Cluster, deadline: float) -> str:
    """POST a text to the webapp frontend's /api/echo: it forwards it to its --backend-url,
    http://backend:9898/echo (a name of its own namespace, webapp), and answers the list of
    the backends' replies, here the backend's echo of the text."""
    frontend = cluster.cluster_ip("webapp/frontend")
    text = f"hello-from-pinnace-{uuid.uuid4().hex[:8]}"
    last = Reply(0, "not asked")
    while time.monotonic() < deadline:
        last = request("POST", frontend, 80, "/api/echo", body=text.encode())
        if json_of(last) == [text]:
            return ""
        time.sleep(0.5)
    return f"echo: {last.status} {last.body[:160]}"


# -- the applications ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class App:
    name: str
    files: tuple[str, ...]  # of tests/fixtures/real-manifests, applied in this order
    images: str  # the build.sh target that makes its stand-ins
    drive: Callable[[Cluster, float], str]
    checks: tuple[Callable[[Cluster], str], ...] = ()


APPS = {
    "guestbook": App(
        "guestbook", ("guestbook-all-in-one.yaml",), "guestbook", guestbook, (followers_linked,)
    ),
    "voting": App(
        "voting",
        tuple(
            f"voting-{part}.yaml"
            for part in (
                "db-deployment",
                "db-service",
                "redis-deployment",
                "redis-service",
                "worker-deployment",
                "vote-deployment",
                "vote-service",
                "result-deployment",
                "result-service",
            )
        ),
        "voting",
        voting,
    ),
    "podinfo": App(
        "podinfo",
        tuple(
            f"podinfo-webapp-{part}.yaml"
            for part in (
                "namespace",
                "service-account",
                "backend-service",
                "backend-deployment",
                "frontend-service",
                "frontend-deployment",
            )
        ),
        "podinfo",
        podinfo,
    ),
}


# -- one run -------------------------------------------------------------------------------


@dataclass
class Run:
    app: str
    pods: int = 0
    running: int = 0
    nodes: int = 0  # how many nodes the pods ran on (2: traffic crossed nodes)
    answered: bool = False
    to_running: float | None = None  # seconds from the first apply to every pod Running
    to_answer: float | None = None  # ... to the end-to-end answer
    why: str = ""


def nodes_used(pods: Sequence[dict[str, Any]]) -> int:
    return len({p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName")})


def pod_counts(pods: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(pods Running with every container ready, pods) of a `get pods -o json` list."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    running = sum(
        1
        for p in live
        if p["status"].get("phase") == "Running"
        and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])
    )
    return running, len(live)


def replicas_wanted(app: App) -> int:
    """How many pods the app's Deployments ask for (the files' spec.replicas, default 1)."""
    total = 0
    for name in app.files:
        for doc in yaml.safe_load_all((FIXTURES / name).read_text()):
            if doc and doc.get("kind") == "Deployment":
                total += int(doc["spec"].get("replicas", 1))
    return total


def run_once(app: App, client: docker.DockerClient, timeout: float) -> Run:
    result = Run(app.name)
    network = ipaddress.IPv4Network(f"10.{random.randint(200, 239)}.{random.randint(0, 255)}.0/24")
    workdir = Path(tempfile.mkdtemp(prefix=f"pinnace-apps-{app.name}-"))
    run_id = uuid.uuid4().hex[:6]
    nodes = [f"apps-{run_id}-n1", f"apps-{run_id}-n2"]
    procs = PinnaceProcs(client, workdir)
    wanted = replicas_wanted(app)
    try:
        procs.start_master("--no-lb", "--service-cidr", str(network))
        for node in nodes:
            procs.start_agent(node, "--cluster-dns=auto", node_proxy=True)
        procs.wait_ready(nodes, 60)
        start = time.monotonic()
        deadline = start + timeout
        for name in app.files:
            procs.cli("apply", "-f", str(FIXTURES / name))

        def all_running() -> bool:
            listed = json.loads(procs.cli("get", "pods", "-A", "-o", "json").stdout)
            result.running, result.pods = pod_counts(listed["items"])
            result.nodes = nodes_used(listed["items"])
            return result.pods == wanted and result.running == wanted

        result.to_running = wait_until("every pod Running", all_running, timeout) - start

        def cluster_ip(service: str) -> str:
            namespace, _, name = service.rpartition("/")
            args = ("get", "svc", name, "-n", namespace or "default", "-o", "json")
            return str(json.loads(procs.cli(*args).stdout)["spec"]["clusterIP"])

        def containers(prefix: str) -> list[Any]:
            found = []
            for node in nodes:
                for c in client.containers.list(filters={"label": f"pinnace.node={node}"}):
                    # A pod sandbox's holder is no container of the pod's (no shell in it).
                    if "pinnace.sandbox" in c.labels:
                        continue
                    if c.labels.get("pinnace.pod", "").startswith(prefix):
                        found.append(c)
            return found

        probe = Cluster(cluster_ip, containers)
        why = app.drive(probe, deadline)
        if not why:
            result.to_answer = time.monotonic() - start
            why = next((w for check in app.checks if (w := check(probe))), "")
        result.answered = not why
        result.why = why
    except BenchError as e:
        result.why = str(e)
    finally:
        procs.close()
        for node in nodes:
            stop_node_dns(Path(DNS_DIR), node)
        subprocess.run(
            ["ip", "route", "del", "local", str(network), "dev", "lo", "table", "local"],
            capture_output=True,
            check=False,
        )
        if result.answered:
            subprocess.run(["rm", "-rf", "--one-file-system", str(workdir)], check=False)
        else:
            result.why += f" (logs: {workdir})"
    return result


# -- the table -----------------------------------------------------------------------------


def seconds(values: Sequence[float | None]) -> str:
    """The median of the runs that got there in seconds, the worst beside it; "-" for none."""
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    text = f"{statistics.median(got):.1f} s"
    if len(got) > 1:
        text += f" (worst {max(got):.1f})"
    if len(got) < len(values):
        text += f", {len(values) - len(got)} run(s) never"
    return text


def render(apps: Sequence[App], runs: dict[str, list[Run]]) -> str:
    header = (
        "app",
        "files",
        "pods Running",
        "nodes",
        "end to end answer",
        "time to answer",
        "time to all Running",
    )
    rows = [header]
    for app in apps:
        done = runs[app.name]
        answered = sum(r.answered for r in done)
        pods = min((f"{r.running}/{r.pods}" for r in done), key=lambda s: int(s.split("/")[0]))
        rows.append(
            (
                app.name,
                str(len(app.files)),
                pods,
                "/".join(sorted({str(r.nodes) for r in done})),
                f"{'yes' if answered == len(done) else 'no'} ({answered}/{len(done)} runs)",
                seconds([r.to_answer for r in done]),
                seconds([r.to_running for r in done]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    failures = [f"{r.app}: {r.why}" for app in apps for r in runs[app.name] if r.why]
    return "\n".join(lines + failures)


def figures(apps: Sequence[App], runs: dict[str, list[Run]]) -> list[Figure]:
    out = []
    for app in apps:
        done = runs[app.name]
        answers = [r.to_answer for r in done if r.to_answer is not None]
        note = f"median of {len(done)} runs; answered {len(answers)}/{len(done)}"
        if answers:
            out.append(
                Figure(
                    f"{app.name}: apply -> end-to-end answer",
                    statistics.median(answers),
                    "s",
                    f"{note}, worst {max(answers):.3f}",
                )
            )
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--apps", default=",".join(APPS), help="comma-separated: " + ", ".join(APPS)
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per run")
    parser.add_argument("--no-build", action="store_true", help="use the images as they are")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    unknown = set(args.apps.split(",")) - set(APPS)
    if unknown:
        parser.error(f"unknown app(s) {', '.join(sorted(unknown))}: known are {', '.join(APPS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    apps = [APPS[name] for name in args.apps.split(",")]
    if not args.no_build:
        targets = sorted({app.images for app in apps})
        built = subprocess.run(["bash", str(BUILD), *targets], check=False)
        if built.returncode != 0:
            print(f"bench failed: build.sh {' '.join(targets)} failed", file=sys.stderr)
            return 1
    client = docker.from_env()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in _load())}", flush=True)
    runs: dict[str, list[Run]] = {app.name: [] for app in apps}
    for i in range(args.runs):
        for app in apps:  # interleaved, so a noisy moment does not hit one app only
            done = run_once(app, client, args.timeout)
            runs[app.name].append(done)
            state = "answered" if done.answered else f"FAILED: {done.why}"
            print(f"run {i + 1}/{args.runs} {app.name}: {state}", flush=True)
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in _load())}")
    print(render(apps, runs))
    if not args.no_record:
        with contextlib.suppress(OSError):
            command = "python -m tests.bench.apps " + " ".join(argv or sys.argv[1:])
            record(figures(apps, runs), command)
    return 0 if all(r.answered for done in runs.values() for r in done) else 1


def _load() -> tuple[float, float, float]:
    return os.getloadavg()


if __name__ == "__main__":
    sys.exit(main())
