"""Benchmark: how fast pinnace heals, and whether replica counts stay exact.

Run as `python -m tests.bench.recovery [--trials 10] [--pause-trials 3] [--no-swarm]`;
`--only container-kill --compare DIR` also runs a cluster from another checkout (DIR, e.g. a
worktree of the commit before a change) and kills one pod in each in turn, so the before
and after figures share one load.
One master (default flags: 1 s heartbeat, 3 s lease, eviction at once) and two agents on
127.0.0.1 run `pinnace/httpd:latest`; every time is read off the engine itself
(containers by label, polled every 25 ms), from the moment the harm is done:
- container kill: `docker kill` of one pod's container -> a new container for the
  same pod running (its first restart: each trial kills a different pod; once its standby
  is made and listed, or with `--kill-at standby-made` as soon as the engine says its
  standby started: tests/bench/standby_kill.py); each
  restart's spans as the agent logged them, and after each trial one round of the
  engine's own floor for the same image (tests/bench/engine_floor.py: `docker start`,
  `docker restart`, kill -> die event -> start, the engine's on-failure policy);
- partition: `SIGSTOP` of the agent holding the pods -> replacements running on
  the other node; then `SIGCONT` -> the stale copies gone (fenced), after which
  the total is watched for a few seconds: any copy beyond `replicas` is counted
  as a duplicate after heal;
- node kill: `kill -9` of the agent holding the pods and removal of its
  containers (a dead machine) -> all the pods running on the other node; the
  dead node is deleted and a fresh agent joins before the next trial;
- master paused 6 s and 30 s: `SIGSTOP` of the master (a VM pause, a swap
  storm), then `SIGCONT`, under a stream of HTTP requests (100 a second through
  the master's HAProxy to a service of 4 pods); counted: pods replaced (running
  containers before the pause that are gone after it) and requests failed,
  watched until the cluster is whole again and then for a further
  WATCH_AFTER_PAUSE seconds (longer than the agents' reconnect grace).
- master kill -9, 10 s down, and master restart (graceful): the master killed
  with SIGKILL and started again 10 s later, or stopped with SIGTERM and started
  again at once (same port and data dir), under the same request stream; the
  load balancer (HAProxy) keeps serving meanwhile and the new master adopts it.
  Counted as for a pause, from the fault until the cluster is whole again plus
  WATCH_AFTER_PAUSE seconds.
One JSON line per figure (each row's p50 and p99, the duplicates, each pause's and
restart's pods replaced and requests failed) goes to tests/bench/results.jsonl unless
--no-record, as every bench's do.
Docker Swarm's container-kill figure is taken beside pinnace's, for the same
image on the same engine: a single-node swarm (created only if the engine is in
none, and left again, also on errors and Ctrl-C), a service of 3 replicas,
`docker kill` of one task container -> 3 running again. Everything started here
is stopped by PID or removed by id/label in finally blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import docker

from tests.bench.engine import (
    SWARM_SERVICE_LABEL,
    BenchError,
    SwarmSession,
    any_count,
    docker_cli,
    list_containers,
    machine_info,
)
from tests.bench.engine_floor import FloorRounds, paired_lines
from tests.bench.lb_cluster import free_port
from tests.bench.procs import REPO, PinnaceProcs, deployment_manifest
from tests.bench.recovery_report import (
    PauseTrial,
    Row,
    duplicates_line,
    figures,
    pause_line,
    render_table,
)
from tests.bench.recovery_spans import read_restarts, span_table, spans
from tests.bench.results import record
from tests.bench.standby_kill import StandbyStarts

COMMAND = "python -m tests.bench.recovery"
IMAGE = "pinnace/httpd:latest"
POLL = 0.025
PARTITION_REPLICAS = 4
NODE_KILL_REPLICAS = 4
SWARM_REPLICAS = 3
# How long the healed total is watched for duplicates after each partition.
WATCH_AFTER_HEAL = 3.0
PAUSE_REPLICAS = 4
PAUSES = (6.0, 30.0)
# How long a resumed master is watched for late damage (reconnect grace 10 s + lease).
WATCH_AFTER_PAUSE = 14.0


def makes_standbys(source: Path, agent_args: Sequence[str]) -> bool:
    """Whether the agents of the checkout at `source`, given `agent_args`, make standby
    holders: the flag says so, else the tree's default (on since it became the default;
    an older tree has the flag off by default, or no such flag)."""
    if "--no-standby-sandbox" in agent_args:
        return False
    if "--standby-sandbox" in agent_args:
        return True
    main = (source / "agent" / "main.py").read_text()
    return bool(_STANDBY_ON.search(main))


# The agent's flag declared on by default (agent/main.py).
_STANDBY_ON = re.compile(
    r'"--standby-sandbox",\s*action=argparse\.BooleanOptionalAction,\s*default=True'
)


def poll(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll every 25 ms; the monotonic time `check` first held."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL)
    return time.monotonic()


class Pinnace:
    """The cluster under test, seen through the engine and the CLI."""

    def __init__(
        self,
        procs: PinnaceProcs,
        run_id: str,
        timeout: float,
        label: str = "",
        agent_args: Sequence[str] = (),
    ) -> None:
        self.c = procs
        # Flags every agent of this cluster gets (--agent-arg: e.g. --pod-sandbox).
        self.agent_args = tuple(agent_args)
        self.api: Any = procs.client.api
        self.run_id = run_id
        self.timeout = timeout
        # How its lines are told apart when another tree runs beside it ("": alone).
        self.label = label
        # --kill-at standby-made: each trial's kill -> its standby's start event, seconds.
        self.standby_lags: list[float] = []

    def running(self, deployment: str, node: str | None = None) -> list[dict[str, Any]]:
        """Running containers of a deployment's pods (on one node, or on any of ours)."""
        found: list[dict[str, Any]] = []
        for name in [node] if node else self.c.node_names:
            found += [
                c
                for c in self.api.containers(
                    filters={"label": f"pinnace.node={name}", "status": "running"}
                )
                if c["Labels"].get("pinnace.pod", "").startswith(f"{deployment}-")
                # A pod sandbox's holder (--pod-sandbox) is no container of the pod's.
                and "pinnace.container" in c["Labels"]
            ]
        return found

    def running_again(self, pod: str, old_id: str, old_started: str) -> bool:
        """A container of `pod` runs that is not the killed run: a new container, or the
        same one started again in place (a later StartedAt)."""
        for c in self.running("ck"):
            if c["Labels"]["pinnace.pod"] != pod:
                continue
            if c["Id"] != old_id:
                return True
            with contextlib.suppress(docker.errors.NotFound):
                state = self.api.inspect_container(c["Id"])["State"]
                if state["Running"] and state["StartedAt"] != old_started:
                    return True
        return False

    def count(self, deployment: str, nodes: Sequence[str]) -> int:
        return sum(len(self.running(deployment, node)) for node in nodes)

    def start_agent(self, short: str) -> str:
        name = f"it-{self.run_id}-{short}"
        self.c.start_agent(name, *self.agent_args, log_name=f"agent-{short}")
        self.c.wait_ready([name], self.timeout)
        return name

    def apply(self, name: str, replicas: int) -> None:
        path = self.c.workdir / f"{name}.yaml"
        path.write_text(deployment_manifest(name, replicas, IMAGE, grace=2))
        self.c.cli("apply", "-f", str(path))
        poll(
            f"{replicas} pods of {name} running",
            lambda: len(self.running(name)) == replicas and self.pods_running(name) == replicas,
            self.timeout,
        )

    def wait_standbys(self, name: str, replicas: int) -> None:
        """With agents that make standbys (makes_standbys): until every pod of `name` has
        its standby holder (made once the engine is quiet, after the apply), as a crash long
        after the start finds it. Agents that make none: nothing to wait for."""
        if not makes_standbys(self.c.source, self.agent_args):
            return
        began = time.monotonic()

        def made() -> int:
            return sum(
                1
                for n in self.c.node_names
                for c in self.api.containers(
                    filters={"label": [f"pinnace.node={n}", "pinnace.sandbox-standby"]}
                )
                if c["Labels"].get("pinnace.pod", "").startswith(f"{name}-")
            )

        def known() -> bool:
            # Each agent's listing gave its containers their standbys: until then a crash
            # is started again in place where the worker decides from what it listed (trees
            # before Runtime.standby_of; since, the runtime says so once the standby runs).
            logs = {n: self.c.agent_log(n) for n in self.c.agents}
            return all(
                f"container {c['Id'][:12]} listed with its standby" in logs[n]
                for n in self.c.agents
                for c in self.running(name, n)
            )

        poll(f"{replicas} standbys of {name}", lambda: made() == replicas, self.timeout)
        poll(f"the standbys of {name} listed", known, self.timeout)
        print(f"  standbys of {replicas} pods made {time.monotonic() - began:.1f} s after running")

    def pods_running(self, name: str) -> int:
        return sum(
            1
            for p in self.c.get_json("pods")["items"]
            if p["metadata"]["name"].startswith(f"{name}-")
            and p["status"].get("phase") == "Running"
        )

    def delete(self, name: str) -> None:
        self.c.cli("delete", "deployment", name)
        poll(f"{name}'s containers gone", lambda: not self.running(name), self.timeout)

    def holder(self, name: str) -> str:
        """The node running most of the deployment's containers."""
        counts = {n: len(self.running(name, n)) for n in self.c.agents}
        return max(counts, key=lambda n: counts[n])


Kills = tuple[list[float], list[dict[str, float]]]
KILL_AT = ("settled", "standby-made")


@dataclass(frozen=True, slots=True)
class Victim:
    """A trial's container as it ran before the kill."""

    id: str
    pod: str
    started: str
    # --kill-at standby-made: the engine's time of its standby's start event (epoch s).
    standby_at: float = 0.0


def settled_victims(p: Pinnace) -> Iterator[Victim]:
    """`--kill-at settled`: `trials` pods applied at once, each killed (a different one a
    trial) once every standby is made and listed (Pinnace.wait_standbys)."""
    for c in p.running("ck"):
        yield Victim(
            c["Id"],
            c["Labels"]["pinnace.pod"],
            p.api.inspect_container(c["Id"])["State"]["StartedAt"],
        )


def standby_made_victims(p: Pinnace, starts: StandbyStarts) -> Iterator[Victim]:
    """`--kill-at standby-made` (tests/bench/standby_kill.py): each trial scales the
    Deployment up by one, finds the new pod's running container, then waits for the
    engine's start event of that pod's standby and yields the container at once."""
    done: set[str] = set()
    n = 0
    while True:
        n += 1
        p.c.cli("scale", "deployment", "ck", "--replicas", str(n))

        def new_one() -> list[dict[str, Any]]:
            return [c for c in p.running("ck") if c["Labels"]["pinnace.pod"] not in done]

        poll(f"pod {n} of ck running", lambda: len(new_one()) == 1, p.timeout)
        (c,) = new_one()
        pod = c["Labels"]["pinnace.pod"]
        started = p.api.inspect_container(c["Id"])["State"]["StartedAt"]
        made = starts.wait(p.c.node_names, "ck-", done, p.timeout)
        if made.pod != pod:
            raise BenchError(f"a standby for {made.pod} started, not for the new {pod}")
        done.add(pod)
        yield Victim(c["Id"], pod, started, made.at)


def container_kill(
    clusters: Sequence[Pinnace],
    trials: int,
    floor: FloorRounds | None = None,
    kill_at: str = "settled",
) -> list[Kills]:
    """Kill a different pod's container each trial; seconds until that pod runs again, and
    each restart's spans as its agent logged them (tests/bench/recovery_spans.py). With
    several clusters (--compare) each trial kills one pod in each in turn, so that both
    figures are taken under the same load; `floor` takes one round of the engine's own
    figures after each trial (tests/bench/engine_floor.py), under that load too. `kill_at`:
    when a trial kills, "settled" (its standby made and listed) or "standby-made" (as soon
    as the engine says its standby started: settled_victims, standby_made_victims)."""
    starts: StandbyStarts | None = None
    if kill_at == "standby-made":
        for p in clusters:
            p.apply("ck", 0)
        starts = StandbyStarts(clusters[0].api)
        victims = [standby_made_victims(p, starts) for p in clusters]
    else:
        for p in clusters:
            p.apply("ck", trials)
        for p in clusters:
            p.wait_standbys("ck", trials)
        victims = [settled_victims(p) for p in clusters]
    times: list[list[float]] = [[] for _ in clusters]
    kills: list[list[tuple[str, float]]] = [[] for _ in clusters]
    try:
        for n in range(trials):
            for i, p in enumerate(clusters):
                victim = next(victims[i])
                start, killed_at = time.monotonic(), time.time()
                p.api.kill(victim.id)
                end = poll(
                    f"pod {victim.pod} running again",
                    functools.partial(p.running_again, victim.pod, victim.id, victim.started),
                    p.timeout,
                )
                times[i].append(end - start)
                kills[i].append((victim.pod, killed_at))
                lag = ""
                if victim.standby_at:
                    p.standby_lags.append(killed_at - victim.standby_at)
                    lag = f" (killed {1000 * p.standby_lags[-1]:.0f} ms after its standby started)"
                print(f"  container kill {n + 1:2}{p.label}: {times[i][-1]:.2f} s{lag}", flush=True)
            if floor is not None:
                floor.round()
    finally:
        if starts is not None:
            starts.close()
    out: list[Kills] = []
    for p in clusters:
        if p.standby_lags:
            lags = sorted(p.standby_lags)
            print(
                f"  kill after its standby's start event{p.label}: median"
                f" {1000 * lags[len(lags) // 2]:.0f} ms, most {1000 * lags[-1]:.0f} ms"
            )
    for i, p in enumerate(clusters):
        logged = [r for name in p.c.agents for r in read_restarts(p.c.agent_log(name))]
        rows: list[dict[str, float]] = []
        for pod, killed_at in kills[i]:
            mine = [r for r in logged if r.pod == pod and r.decided >= killed_at]
            if mine:
                in_place = float(mine[0].how == "in place")
                rows.append(spans(killed_at, mine[0]) | {"in place": in_place})
        p.delete("ck")
        out.append((times[i], rows))
    return out


def partition(p: Pinnace, trials: int) -> tuple[list[float], list[float], list[int]]:
    """SIGSTOP the holder -> replaced elsewhere; SIGCONT -> stale copies fenced; duplicates."""
    p.apply("pt", PARTITION_REPLICAS)
    replaced: list[float] = []
    fenced: list[float] = []
    duplicates: list[int] = []
    for trial in range(1, trials + 1):
        r, f, d = _partition_trial(p, "pt", PARTITION_REPLICAS)
        replaced.append(r)
        fenced.append(f)
        duplicates.append(d)
        print(
            f"  partition {trial:2}: replaced {r:.2f} s, fenced {f:.2f} s after SIGCONT, "
            f"duplicates after heal {d}",
            flush=True,
        )
    p.delete("pt")
    return replaced, fenced, duplicates


def _partition_trial(p: Pinnace, name: str, n: int) -> tuple[float, float, int]:
    stopped = p.holder(name)
    others = [node for node in p.c.agents if node != stopped]
    agent = p.c.agents[stopped]
    start = time.monotonic()
    agent.send_signal(signal.SIGSTOP)
    try:
        end = poll("replacements running", lambda: p.count(name, others) >= n, p.timeout)
    finally:
        agent.send_signal(signal.SIGCONT)
    healed_from = time.monotonic()
    gone = poll("the stale copies fenced", lambda: not p.running(name, stopped), p.timeout)
    most = 0
    watch_until = time.monotonic() + WATCH_AFTER_HEAL
    while time.monotonic() < watch_until:
        most = max(most, len(p.running(name)))
        time.sleep(POLL)
    poll(f"{stopped} Ready again", lambda: stopped in p.c.ready_nodes(), p.timeout)
    return end - start, gone - healed_from, max(0, most - n)


class RequestStream:
    """GETs through the load balancer, 100 a second, each on a new connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
            try:
                conn.request("GET", "/")
                good = conn.getresponse().status == 200
            except OSError:
                good = False
            finally:
                conn.close()
            if good:
                self.ok += 1
            else:
                self.failed += 1


def master_pause(p: Pinnace, seconds: float, trials: int) -> list[PauseTrial]:
    """SIGSTOP the master for `seconds` under a request stream; what it cost."""
    port = free_port()
    path = p.c.workdir / "mp-service.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: mp\nspec:\n"
        f"  selector:\n    app: mp\n  ports:\n  - port: {port}\n    targetPort: 80\n"
    )
    p.c.cli("apply", "-f", str(path))
    p.apply("mp", PAUSE_REPLICAS)
    poll("the service answering", lambda: _answers(port), p.timeout)
    results: list[PauseTrial] = []
    assert p.c.master is not None
    for trial in range(1, trials + 1):
        before = {c["Id"] for c in p.running("mp")}
        with RequestStream(port) as stream:
            poll("requests flowing", lambda: stream.ok >= 20, p.timeout)
            p.c.master.send_signal(signal.SIGSTOP)
            try:
                time.sleep(seconds)  # the fault itself: the master frozen this long
            finally:
                p.c.master.send_signal(signal.SIGCONT)
            poll(
                "the cluster whole again",
                lambda: (
                    set(p.c.agents) <= p.c.ready_nodes() and len(p.running("mp")) == PAUSE_REPLICAS
                ),
                p.timeout,
            )
            watch_until = time.monotonic() + WATCH_AFTER_PAUSE
            while time.monotonic() < watch_until:
                time.sleep(POLL * 4)
        after = {c["Id"] for c in p.running("mp")}
        result = PauseTrial(len(before - after), stream.failed, stream.ok + stream.failed)
        results.append(result)
        print(
            f"  master paused {seconds:g} s {trial:2}: pods replaced {result.pods_replaced}, "
            f"requests failed {result.requests_failed} of {result.requests}",
            flush=True,
        )
        p.apply("mp", PAUSE_REPLICAS)  # whole again before the next trial
    p.delete("mp")
    p.c.cli("delete", "service", "mp")
    return results


# Master restarts: (label, signal, seconds the master stays down).
RESTARTS = (
    ("master kill -9, 10 s down", signal.SIGKILL, 10.0),
    ("master restart (graceful)", signal.SIGTERM, 0.0),
)


def master_restart(p: Pinnace, sig: int, down: float, trials: int) -> list[PauseTrial]:
    """Stop the master with `sig`, keep it down `down` s, start it again; what it cost."""
    port = free_port()
    path = p.c.workdir / "mr-service.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: mr\nspec:\n"
        f"  selector:\n    app: mr\n  ports:\n  - port: {port}\n    targetPort: 80\n"
    )
    p.c.cli("apply", "-f", str(path))
    p.apply("mr", PAUSE_REPLICAS)
    poll("the service answering", lambda: _answers(port), p.timeout)
    results: list[PauseTrial] = []
    for trial in range(1, trials + 1):
        before = {c["Id"] for c in p.running("mr")}
        master_port = int(p.c.address.rsplit(":", 1)[1])
        with RequestStream(port) as stream:
            poll("requests flowing", lambda: stream.ok >= 20, p.timeout)
            assert p.c.master is not None
            p.c.kill(p.c.master, sig)
            time.sleep(down)  # the fault itself: no master for this long
            p.c.start_master(port=master_port)
            poll(
                "the cluster whole again",
                lambda: (
                    set(p.c.agents) <= p.c.ready_nodes() and len(p.running("mr")) == PAUSE_REPLICAS
                ),
                p.timeout,
            )
            watch_until = time.monotonic() + WATCH_AFTER_PAUSE
            while time.monotonic() < watch_until:
                time.sleep(POLL * 4)
        after = {c["Id"] for c in p.running("mr")}
        result = PauseTrial(len(before - after), stream.failed, stream.ok + stream.failed)
        results.append(result)
        print(
            f"  master {signal.Signals(sig).name} + {down:g} s down {trial:2}: pods replaced "
            f"{result.pods_replaced}, requests failed {result.requests_failed} of "
            f"{result.requests}",
            flush=True,
        )
        p.apply("mr", PAUSE_REPLICAS)
    p.delete("mr")
    p.c.cli("delete", "service", "mr")
    return results


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def node_kill(p: Pinnace, trials: int) -> list[float]:
    """kill -9 the holder and remove its containers; seconds until all pods run elsewhere."""
    p.apply("nk", NODE_KILL_REPLICAS)
    times: list[float] = []
    for trial in range(1, trials + 1):
        times.append(_node_kill_trial(p, "nk", NODE_KILL_REPLICAS))
        print(f"  node kill {trial:2}: {times[-1]:.2f} s", flush=True)
        p.start_agent(f"nk{trial}")
    p.delete("nk")
    return times


def _node_kill_trial(p: Pinnace, name: str, n: int) -> float:
    dead = p.holder(name)
    others = [node for node in p.c.agents if node != dead]
    start = time.monotonic()
    p.c.kill(p.c.agents.pop(dead), signal.SIGKILL)
    for c in p.api.containers(all=True, filters={"label": f"pinnace.node={dead}"}):
        with contextlib.suppress(docker.errors.NotFound):
            p.api.remove_container(c["Id"], force=True)
    end = poll("all pods running elsewhere", lambda: p.count(name, others) >= n, p.timeout)
    # The machine is gone for good: forget it (a fresh one joins before the next trial).
    p.c.cli("delete", "node", dead)
    return end - start


class SwarmRecovery(SwarmSession):
    """Swarm's answer to a killed task container, on the same engine and image."""

    def time_kills(self, name: str, trials: int, timeout: float) -> list[float]:
        label = f"{SWARM_SERVICE_LABEL}={name}"
        self._services.add(name)
        docker_cli(
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--replicas",
            str(SWARM_REPLICAS),
            "--name",
            name,
            IMAGE,
        )
        api: Any = self.client.api

        def running() -> list[dict[str, Any]]:
            return list_containers(self.client, label)

        poll("swarm tasks running", lambda: len(running()) >= SWARM_REPLICAS, timeout)
        times: list[float] = []
        for trial in range(1, trials + 1):
            victim = running()[0]["Id"]
            start = time.monotonic()
            api.kill(victim)
            end = poll(
                "swarm back to full strength",
                lambda victim=victim: (  # type: ignore[misc]
                    len([c for c in running() if c["Id"] != victim]) >= SWARM_REPLICAS
                ),
                timeout,
            )
            times.append(end - start)
            print(f"  swarm container kill {trial:2}: {times[-1]:.2f} s", flush=True)
        self._remove_service(name)
        poll(f"service {name}'s containers gone", lambda: any_count(self.client, label) == 0, 60)
        return times


SCENARIOS = ("container-kill", "partition", "node-kill", "master-pause", "master-restart")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.recovery",
        description="Recovery times of pinnace (container kill, node kill, partition) vs Swarm.",
    )
    parser.add_argument("--trials", type=int, default=10, help="trials per scenario (>= 1)")
    parser.add_argument("--no-swarm", action="store_true", help="skip Docker Swarm's figure")
    parser.add_argument(
        "--pause-trials",
        type=int,
        default=3,
        help="trials per master pause (6 s, 30 s) and per master restart",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one wait may take")
    parser.add_argument("--keep", action="store_true", help="keep the tmp dir (logs, data)")
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="container kill only: also run a cluster from another pinnace checkout, killing"
        " in each in turn (a before/after figure under one load)",
    )
    parser.add_argument(
        "--agent-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="give this tree's agents FLAG (repeatable; e.g. --agent-arg=--pod-sandbox); the"
        " --compare tree's agents run with their defaults. Where the agents make standby holders"
        " (this tree's default; --agent-arg=--no-standby-sandbox: none) the kills wait until"
        " every pod has its standby",
    )
    parser.add_argument(
        "--kill-at",
        choices=KILL_AT,
        default="settled",
        help="container kill: when a trial kills its pod's container; settled (default): once"
        " every pod's standby is made and each agent's listing showed it; standby-made: one new"
        " pod a trial (the Deployment scaled up by one), killed as soon as the engine reports"
        " its standby's start, before any listing shows it (tests/bench/standby_kill.py)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        help="run only this scenario (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    args.only = args.only or list(SCENARIOS)
    if args.compare and args.only != ["container-kill"]:
        parser.error("--compare goes with --only container-kill")
    if args.compare and not (Path(args.compare) / "agent" / "worker.py").is_file():
        parser.error(f"--compare {args.compare}: not a pinnace checkout (no agent/worker.py)")
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    if args.kill_at == "standby-made":
        trees = [(REPO, args.agent_arg)] + ([(Path(args.compare), [])] if args.compare else [])
        for tree, flags in trees:
            if not makes_standbys(tree, flags):
                parser.error(f"--kill-at standby-made: the agents of {tree} make no standbys")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every finally block runs.
    raise KeyboardInterrupt(f"signal {signum}")


def _start_cluster(
    procs: PinnaceProcs, timeout: float, label: str = "", agent_args: Sequence[str] = ()
) -> Pinnace:
    procs.start_master()
    p = Pinnace(procs, uuid.uuid4().hex[:6], timeout, label, agent_args)
    p.start_agent("a")
    p.start_agent("b")
    print(f"pinnace{label}: master {procs.address}, nodes {', '.join(procs.agents)}")
    return p


def _run_pinnace(client: docker.DockerClient, workdir: Path, args: argparse.Namespace) -> Any:
    procs = PinnaceProcs(client, workdir)
    other: PinnaceProcs | None = None
    try:
        p = _start_cluster(
            procs, args.timeout, " (this tree)" if args.compare else "", args.agent_arg
        )
        clusters = [p]
        if args.compare:
            other = PinnaceProcs(client, workdir / "compare", source=Path(args.compare).resolve())
            other.workdir.mkdir()
            clusters.append(_start_cluster(other, args.timeout, f" ({args.compare})"))
        only = set(args.only)
        if "container-kill" in only:
            floor = FloorRounds(client, IMAGE)
            try:
                killed = container_kill(clusters, args.trials, floor, args.kill_at)
            finally:
                floor.close()
            floors = floor.found
        else:
            killed, floors = [], {}
        kills, kill_spans = killed[0] if killed else ([], [])
        replaced, fenced, duplicates = (
            partition(p, args.trials) if "partition" in only else ([], [], [])
        )
        dead = node_kill(p, args.trials) if "node-kill" in only else []
        paused = (
            {s: master_pause(p, s, args.pause_trials) for s in PAUSES}
            if "master-pause" in only
            else {}
        )
        restarts = (
            {
                label: master_restart(p, sig, down, args.pause_trials)
                for label, sig, down in RESTARTS
            }
            if "master-restart" in only
            else {}
        )
    finally:
        if other is not None:
            other.close()
        procs.close()
    compared = [(clusters[i].label, *killed[i]) for i in range(1, len(killed))]
    return kills, kill_spans, replaced, fenced, duplicates, dead, paused, restarts, compared, floors


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    client = docker.from_env()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        print(f"image {IMAGE} is missing: run `make images`", file=sys.stderr)
        return 1
    info = machine_info(client)
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-recovery-"))
    print(f"Docker {info['docker']}, storage {info['storage']}, kernel {info['kernel']}")
    print("pinnace master flags: defaults (heartbeat 1 s, lease 3 s, pod eviction timeout 0 s)")
    print(f"tmp dir {workdir}; {args.trials} trials per scenario")
    failed = True
    swarm_times: list[float] = []
    swarm_note = ""
    try:
        results = _run_pinnace(client, workdir, args)
        (
            kills,
            kill_spans,
            replaced,
            fenced,
            duplicates,
            dead,
            paused,
            restarts,
            compared,
            floors,
        ) = results
        if args.no_swarm:
            swarm_note = "skipped (--no-swarm)"
        else:
            swarm = SwarmRecovery(client)
            try:
                skip = swarm.start()
                if skip:
                    swarm_note = f"skipped: {skip}"
                else:
                    swarm_times = swarm.time_kills(
                        f"pinnace-recovery-{workdir.name[-6:]}", args.trials, args.timeout
                    )
            finally:
                swarm.close()
        failed = False
    except BenchError as e:
        print(f"recovery bench failed: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
        if failed or args.keep:
            print(f"logs and data kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    this = " this tree" if compared else ""
    when = ", killed at its standby's start" if args.kill_at == "standby-made" else ""
    kill_row = "container kill -> running again (pinnace{}, 1st restart" + when + ")"
    rows = [
        Row(kill_row.format(this), kills, 0.5, "p99"),
        *(Row(kill_row.format(label), t, 0.5, "p99") for label, t, _ in compared),
        *(Row(f"engine floor: {name}", seconds) for name, seconds in floors.items() if seconds),
        Row(
            f"container kill -> running again (Docker Swarm, {SWARM_REPLICAS} replicas)",
            swarm_times,
        ),
        Row(f"node kill -> all {NODE_KILL_REPLICAS} pods running elsewhere", dead, 5.0, "p99"),
        Row(f"partition (SIGSTOP) -> {PARTITION_REPLICAS} replacements running", replaced),
        Row("partition healed (SIGCONT) -> stale copies fenced", fenced),
    ]
    print()
    print(render_table(rows))
    print(duplicates_line(duplicates))
    if any(floors.values()):
        print("engine floor, " + "\nengine floor, ".join(paired_lines(floors)))
    for label, restarts_spans in [(this, kill_spans)] + [(lb, r) for lb, _, r in compared]:
        if not restarts_spans:
            continue
        in_place = sum(int(r.get("in place", 0)) for r in restarts_spans)
        print(
            f"\ncontainer kill{label}, spans as the agents logged them ({len(restarts_spans)}"
            f" restarts, {in_place} started again in place;"
            f" load average {os.getloadavg()[0]:.1f}):"
        )
        print(span_table(restarts_spans))
    for seconds, trials in paused.items():
        print(pause_line(f"master paused {seconds:g} s", trials))
    for label, trials in restarts.items():
        print(pause_line(label, trials))
    if swarm_note:
        print(f"Docker Swarm: {swarm_note}")
    if not args.no_record:
        pauses = [(f"master paused {s:g} s", t) for s, t in paused.items()]
        record(
            figures(rows, duplicates, [*pauses, *restarts.items()]),
            f"{COMMAND} {' '.join(sys.argv[1:] if argv is None else argv)}",
        )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
