"""The engine's own floor for running a crashed container again, beside pinnace's figure.

Measured on containers shaped as the agent makes them for the recovery bench's pods (the
same image, port 80 published on 127.0.0.1, Docker's default bridge), so that what is
left between these and pinnace's crash -> running is pinnace's own:
- `docker start` of an exited container: the start call alone, until it returns (the
  engine answers once the container runs);
- `docker start` of a container created ahead (never started), likewise: what starting a
  standby made beforehand costs, with no dead container beside it;
- `docker create` + `docker start` of a new container: what replacing costs when
  nothing was made ahead;
- `docker restart` of an exited container, likewise;
- kill -> die event -> start: `docker kill`, the die event read off the engine's event
  stream, `start` at once; until the start returns. This is the best an agent outside the
  engine can do;
- kill -> die event -> start of a twin: as above, but the start is of another container
  of the same config created beforehand (not timed): what "create the replacement before
  the crash" could reach, as its start need not wait for the engine's cleanup of the dead
  one (unmount, network release), which holds the dead container's lock;
- kill -> die event -> start of a twin joined to a holder: the twin joins the network
  namespace of a running holder (agent/runtime/sandbox.py's pause image, the port
  published on it) made beforehand (not timed), while the killed container had a network
  of its own: the first crash of a one-container pod for which the agent made a standby
  holder once it ran (off the apply's clock);
- kill -> die event -> start, joined: the same for a container that joined a holder,
  started again in place: every later crash in a sandbox (`--pod-sandbox all`);
- the engine's restart policy (`on-failure`), first restart: a fresh container whose
  process is SIGKILLed from the host (a crash: `docker kill` marks a container stopped
  by hand, which no policy restarts), until the engine lists it running again, polled
  every POLL seconds; `engine` beside it is the engine's own StartedAt - FinishedAt.
Every container made here carries LABEL=<run> and is removed by id in a finally block.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker

from tests.bench.engine import BenchError

LABEL = "pinnace.bench.floor"
POLL = 0.005
# How long one wait for the engine may take.
TIMEOUT = 60.0

FLOORS = (
    "docker start (exited)",
    "docker start (created ahead)",
    "docker create + start",
    "docker restart (exited)",
    "kill -> die event -> start",
    "kill -> die event -> start of a twin",
    "restart policy on-failure (engine)",
    "  of which engine: StartedAt - FinishedAt",
    "kill -> die event -> start of a twin joined to a holder",
    "kill -> die event -> start, joined (in place)",
)
# Built by `make images`; the holder the agent's sandboxes use (agent/runtime/sandbox.py).
HOLDER_IMAGE = "pinnace/pause:latest"


def _parse_time(stamp: str) -> float:
    """Docker's RFC 3339 time with nanoseconds -> seconds since the epoch."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    whole = time.mktime(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return whole + float(f"0.{frac or '0'}")


class EngineFloor:
    def __init__(self, client: docker.DockerClient, image: str, run: str) -> None:
        self.api: Any = client.api
        self.image = image
        self.run = run
        self.made: list[str] = []

    def make(
        self, policy: dict[str, Any] | None = None, start: bool = True, joined: str = ""
    ) -> str:
        """A container of the image, port 80 published on 127.0.0.1, or joined to the
        network namespace of the running container `joined` (no port of its own)."""
        if joined:
            host = self.api.create_host_config(
                network_mode=f"container:{joined}", restart_policy=policy
            )
            ports: list[int] | None = None
        else:
            host = self.api.create_host_config(
                port_bindings={80: ("127.0.0.1", None)}, restart_policy=policy
            )
            ports = [80]
        made = self.api.create_container(
            self.image, labels={LABEL: self.run}, host_config=host, ports=ports
        )
        cid = str(made["Id"])
        self.made.append(cid)
        if start:
            self.api.start(cid)
        return cid

    def state(self, cid: str) -> dict[str, Any]:
        return dict(self.api.inspect_container(cid)["State"])

    def wait(self, what: str, cid: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            s = self.state(cid)
            if check(s):
                return s
            time.sleep(POLL)
        raise BenchError(f"engine floor: {what} not seen within {TIMEOUT:g} s")

    def exited(self, cid: str) -> None:
        self.api.kill(cid)
        self.wait("the container exited", cid, lambda s: not s["Running"])

    def time_start(self, cid: str, call: Callable[[str], object]) -> float:
        self.exited(cid)
        began = time.monotonic()
        call(cid)
        return time.monotonic() - began

    def kill_event_start(self, cid: str, twin: str = "") -> float:
        """docker kill -> die event seen on a stream opened before -> start returned (of
        `twin` when given, else of the killed container)."""
        since = time.time() - 1
        stream = self.api.events(
            decode=True,
            since=since,
            filters={"type": ["container"], "event": ["die"], "container": [cid]},
        )
        try:
            seen = threading.Event()

            def follow(events: Iterator[dict[str, Any]]) -> None:
                for event in events:
                    if event.get("timeNano", 0) / 1e9 >= began_wall:
                        seen.set()
                        return

            began_wall = time.time()
            began = time.monotonic()
            reader = threading.Thread(target=follow, args=(stream,), daemon=True)
            reader.start()
            self.api.kill(cid)
            if not seen.wait(TIMEOUT):
                raise BenchError("engine floor: no die event")
            self.api.start(twin or cid)
            return time.monotonic() - began
        finally:
            stream.close()

    def policy_restart(self) -> tuple[float, float]:
        """A fresh on-failure container crashed (SIGKILL from the host) -> running again."""
        cid = self.make({"Name": "on-failure", "MaximumRetryCount": 1})
        s = self.state(cid)
        old = s["StartedAt"]
        began = time.monotonic()
        os.kill(int(s["Pid"]), signal.SIGKILL)
        s = self.wait("the engine's restart", cid, lambda s: s["Running"] and s["StartedAt"] != old)
        took = time.monotonic() - began
        engine = _parse_time(s["StartedAt"]) - _parse_time(s["FinishedAt"])
        self.remove(cid)
        return took, engine

    def holder(self) -> str:
        """A running holder with port 80 published, as a pod sandbox's."""
        host = self.api.create_host_config(port_bindings={80: ("127.0.0.1", None)})
        made = self.api.create_container(
            HOLDER_IMAGE, labels={LABEL: self.run}, host_config=host, ports=[80]
        )
        cid = str(made["Id"])
        self.made.append(cid)
        self.api.start(cid)
        return cid

    def remove(self, cid: str) -> None:
        self.api.remove_container(cid, force=True)
        self.made.remove(cid)

    def close(self) -> None:
        for cid in list(self.made):
            try:
                self.remove(cid)
            except docker.errors.DockerException:
                continue


class FloorRounds:
    """The floors taken one round at a time, between the bench's own trials (one load)."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.floor = EngineFloor(client, image, f"{os.getpid()}-{time.time_ns()}")
        self.found: dict[str, list[float]] = {name: [] for name in FLOORS}
        self._cid = ""
        self._rounds = 0

    def _start_exited(self) -> float:
        return self.floor.time_start(self._cid, self.floor.api.start)

    def _start_ahead(self) -> float:
        ahead = self.floor.make(start=False)
        began = time.monotonic()
        self.floor.api.start(ahead)
        took = time.monotonic() - began
        self.floor.remove(ahead)
        return took

    def _create_start(self) -> float:
        began = time.monotonic()
        fresh = self.floor.make()
        took = time.monotonic() - began
        self.floor.remove(fresh)
        return took

    def round(self) -> None:
        f = self.floor
        if not self._cid:
            self._cid = f.make()
        found = [self.found[name] for name in FLOORS]
        # The three starts go in a rotating order, so that none is always the one taken
        # right after the kill (the engine still busy with it) or right before the next.
        starts = [self._start_exited, self._start_ahead, self._create_start]
        turn = self._rounds % len(starts)
        self._rounds += 1
        for i in [*range(turn, len(starts)), *range(turn)]:
            found[i].append(starts[i]())
        found[3].append(f.time_start(self._cid, lambda c: f.api.restart(c, timeout=0)))
        found[4].append(f.kill_event_start(self._cid))
        twin = f.make(start=False)
        found[5].append(f.kill_event_start(self._cid, twin))
        f.remove(self._cid)
        self._cid = twin
        took, engine = f.policy_restart()
        found[6].append(took)
        found[7].append(engine)
        # A one-container pod's container (a network of its own, self._cid) dies; its twin
        # joined to a standby holder made beforehand starts; then that joined container
        # dies and is started again in place, as in a sandbox.
        holder = f.holder()
        joined = f.make(start=False, joined=holder)
        found[8].append(f.kill_event_start(self._cid, joined))
        found[9].append(f.kill_event_start(joined))
        f.remove(joined)
        f.remove(holder)
        f.api.start(self._cid)  # the next round begins with it running

    def close(self) -> None:
        self.floor.close()


def engine_floor(client: docker.DockerClient, image: str, trials: int) -> dict[str, list[float]]:
    """Seconds of each FLOORS entry, `trials` times each, interleaved (one load for all)."""
    rounds = FloorRounds(client, image)
    try:
        for _ in range(trials):
            rounds.round()
    finally:
        rounds.close()
    return rounds.found


# (this, against): the pairs whose per-round difference says more than two tables: the load
# moves within seconds here, and one round takes both under the same load.
PAIRS = ((1, 0), (2, 0), (2, 1), (5, 4), (8, 4), (9, 4))


def paired_lines(found: dict[str, list[float]]) -> list[str]:
    """Median and p90 of each PAIRS difference, round by round (negative: `this` faster)."""
    from tests.bench.recovery_report import percentile

    lines = []
    for this, against in PAIRS:
        a, b = found[FLOORS[this]], found[FLOORS[against]]
        diffs = [x - y for x, y in zip(a, b, strict=False)]
        if diffs:
            faster = sum(d < 0 for d in diffs)
            lines.append(
                f"{FLOORS[this]} - {FLOORS[against]}, per round: median"
                f" {percentile(diffs, 50):+.2f} s, p90 {percentile(diffs, 90):+.2f} s,"
                f" faster in {faster}/{len(diffs)}"
            )
    return lines


def _rounds(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.bench.engine_floor [TRIALS]`: the floors alone, one table."""
    import argparse
    import sys

    from tests.bench.recovery_report import Row, render_table

    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.engine_floor",
        description="The engine's own floor for running a crashed container again.",
    )
    parser.add_argument(
        "trials", nargs="?", type=_rounds, default=10, help="rounds of every floor (default 10)"
    )
    trials = parser.parse_args(argv).trials
    client = docker.from_env()
    try:
        found = engine_floor(client, "pinnace/httpd:latest", trials)
    except BenchError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        client.close()
    print(render_table([Row(name, seconds) for name, seconds in found.items()]))
    for line in paired_lines(found):
        print(line)
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
