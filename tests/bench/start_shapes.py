"""What the engine's start of a crashed container is made of: the same start by network shape.

Run as `python -m tests.bench.start_shapes [--rounds 10]`. issue 15 asks a crashed
container to run again within 0.5 s p99, and the engine's own kill -> die -> start floor
(tests/bench/engine_floor.py) was 0.55 s on this machine. A start of an exited container
sets its network up again: a network namespace, a veth pair on the bridge, and for each
published port iptables rules and a Docker userland proxy (`docker-proxy`, one process
per port and address family) started before the start returns. Which of those is the
slow part decides what the agent can avoid, so the same container (pinnace/httpd, as the
recovery bench's pods) is started in each shape:
- `bridge+port`: Docker's default bridge, port 80 published on 127.0.0.1 (the agent
  without --pod-network);
- `bridge`: the default bridge, nothing published;
- `network`: a user-defined bridge network made for the run, nothing published (the
  agent with --pod-network, as the compose demo runs it);
- `none`: no network at all (the floor of the start itself: namespaces, cgroups, the
  overlay mount, the process);
- `joined`: the network namespace of another container that keeps running (a holder on
  the default bridge with port 80 published, as Kubernetes' pause container holds a pod's
  network): the crashed container's start and cleanup leave the network alone.
Each round kills and starts one exited container of each shape, in an order rotated from
round to round so no shape always follows another; the figure is the start call until it
returns (the engine answers once the container runs), and the engine's own span from the
`die` event to the `start` event (`docker events` timeNano) is beside it. Every container
and the network made here carry LABEL and are removed by id in a finally block.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import docker

from tests.bench.recovery_report import percentile

IMAGE = "pinnace/httpd:latest"
LABEL = "pinnace.bench.start-shapes"
SHAPES = ("bridge+port", "bridge", "network", "none", "joined")
TIMEOUT = 60.0


def rotated(shapes: Sequence[str], round_index: int) -> list[str]:
    """The shapes in the order of round `round_index` (each round starts one further)."""
    k = round_index % len(shapes)
    return [*shapes[k:], *shapes[:k]]


def summary(values: Sequence[float]) -> str:
    """`median / p90 / worst` in milliseconds."""
    if not values:
        return "-"
    return (
        f"{statistics.median(values) * 1000:.0f} / {percentile(values, 90) * 1000:.0f}"
        f" / {max(values) * 1000:.0f}"
    )


@dataclass(frozen=True, slots=True)
class Timing:
    """One kill -> start of a shape, seconds: the start call until it returned; the engine's
    die -> start events; and where the container has a network of its own, die -> its
    `disconnect` event (the dead run's network cleanup) and its `connect` event -> the start
    event (what follows the network's setup: the process itself), else None."""

    call: float
    die_to_start: float
    die_to_disconnect: float | None
    connect_to_start: float | None
    sent_to_connect: float | None


def timing(stamps: Mapping[str, float], sent: float, call: float) -> Timing:
    """A Timing from the events' times (wall clock, seconds) and the start call's (pure)."""
    die, start = stamps["die"], stamps["start"]
    gone, back = stamps.get("disconnect"), stamps.get("connect")
    return Timing(
        call,
        start - die,
        gone - die if gone is not None else None,
        start - back if back is not None else None,
        back - sent if back is not None else None,
    )


COLUMNS = (
    ("start call", "call"),
    ("die -> start event", "die_to_start"),
    ("die -> disconnect", "die_to_disconnect"),
    ("start sent -> connect", "sent_to_connect"),
    ("connect -> start event", "connect_to_start"),
)


def table(found: Mapping[str, Sequence[Timing]]) -> str:
    """One row a shape, one column a span: median / p90 / worst in ms ("-": no such event)."""
    lines = [" | ".join(["shape (ms: median / p90 / worst)", *(c for c, _ in COLUMNS)])]
    for shape, timings in found.items():
        cells = []
        for _, field in COLUMNS:
            values = [v for t in timings if (v := getattr(t, field)) is not None]
            cells.append(summary(values))
        lines.append(" | ".join([shape, *cells]))
    return "\n".join(lines)


def against_published(calls: Mapping[str, Sequence[float]]) -> list[str]:
    """Each shape's start minus bridge+port's in the same round (negative: faster), as the
    median of the rounds and how many rounds it was faster in: the load moves within
    seconds, so a round's difference says more than two medians."""
    base = calls[SHAPES[0]]
    lines = []
    for shape in SHAPES[1:]:
        diffs = [a - b for a, b in zip(calls[shape], base, strict=True)]
        if diffs:
            lines.append(
                f"{shape} - {SHAPES[0]}, per round: median"
                f" {statistics.median(diffs) * 1000:+.0f} ms,"
                f" faster in {sum(d < 0 for d in diffs)}/{len(diffs)}"
            )
    return lines


class Shapes:
    def __init__(self, client: docker.DockerClient, run: str) -> None:
        self.api: Any = client.api
        self.run = run
        self.made: list[str] = []
        self.network = ""
        self.holder = ""

    def make(self, shape: str, entrypoint: list[str] | None = None) -> str:
        ports: dict[int, Any] = {80: ("127.0.0.1", None)} if shape == "bridge+port" else {}
        if shape == "joined" and not self.holder:
            # It only holds the namespace (busybox sleep): port 80 there is the joined one's.
            self.holder = self.make("bridge+port", ["/bin/sleep", "86400"])
        joined = f"container:{self.holder}"
        mode = {"network": self.network, "none": "none", "joined": joined}.get(shape)
        host = self.api.create_host_config(port_bindings=ports, network_mode=mode)
        made = self.api.create_container(
            IMAGE,
            labels={LABEL: self.run},
            host_config=host,
            ports=[80] if ports else None,
            entrypoint=entrypoint,
        )
        cid = str(made["Id"])
        self.made.append(cid)
        self.api.start(cid)
        return cid

    def kill_start(self, cid: str) -> Timing:
        """kill, wait for the die event, then time `start`, with the engine's event times."""
        stamps: dict[str, float] = {}
        died = threading.Event()
        started = threading.Event()
        stream = self.api.events(
            decode=True,
            since=time.time() - 1,
            filters={"type": ["container", "network"]},
        )
        began_wall = time.time()

        def follow(events: Iterator[dict[str, Any]]) -> None:
            for event in events:
                at = event.get("timeNano", 0) / 1e9
                if at < began_wall:
                    continue
                action = event.get("Action") or event.get("status")
                actor = event.get("Actor") or {}
                if event.get("Type") == "network":
                    # The container leaving its network (the dead run's cleanup) and joining
                    # it again (the new run's): the network's share of the span.
                    if (actor.get("Attributes") or {}).get("container") == cid and "die" in stamps:
                        stamps.setdefault(str(action), at)
                    continue
                if actor.get("ID") != cid:
                    continue
                if action == "die":
                    stamps["die"] = at
                    died.set()
                elif action == "start" and "die" in stamps:
                    stamps["start"] = at
                    started.set()
                    return

        try:
            reader = threading.Thread(target=follow, args=(stream,), daemon=True)
            reader.start()
            self.api.kill(cid)
            if not died.wait(TIMEOUT):
                raise RuntimeError("no die event")
            sent, sent_wall = time.monotonic(), time.time()
            self.api.start(cid)
            took = time.monotonic() - sent
            if not started.wait(TIMEOUT):
                raise RuntimeError("no start event")
            return timing(stamps, sent_wall, took)
        finally:
            stream.close()

    def close(self) -> None:
        for cid in self.made:
            try:
                self.api.remove_container(cid, force=True)
            except docker.errors.DockerException as exc:
                print(f"could not remove {cid[:12]}: {exc}", file=sys.stderr)
        if self.network:
            try:
                self.api.remove_network(self.network)
            except docker.errors.DockerException as exc:
                print(f"could not remove network {self.network}: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.start_shapes", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=10, help="starts of each shape")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds: must be >= 1")
    client = docker.from_env()
    run = f"{os.getpid()}-{time.time_ns()}"
    shapes = Shapes(client, run)
    found: dict[str, list[Timing]] = {s: [] for s in SHAPES}
    loads: list[float] = []
    try:
        made = client.api.create_network(f"pinnace-bench-{run}", labels={LABEL: run})
        shapes.network = str(made["Id"])
        ids = {s: shapes.make(s) for s in SHAPES}
        for r in range(args.rounds):
            for shape in rotated(SHAPES, r):
                found[shape].append(shapes.kill_start(ids[shape]))
            loads.append(os.getloadavg()[0])
    except (docker.errors.DockerException, RuntimeError) as exc:
        print(f"start_shapes failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shapes.close()
        client.close()
    print(f"{args.rounds} rounds; 1-minute load {min(loads):.1f}-{max(loads):.1f}")
    print(table(found))
    for line in against_published({s: [t.call for t in found[s]] for s in SHAPES}):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
