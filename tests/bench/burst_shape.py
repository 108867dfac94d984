"""Does the engine start 3 containers later when their creates arrive together?

Run as `python -m tests.bench.burst_shape [--rounds 10] [--stagger 0.01,0.03]`. In
apply_to_running pinnace's agent sends a pod's create the moment it has the pod, so the
three creates of an apply -> 3 leave within a millisecond of each other, while three
`docker run`s started at once send theirs spread over the few milliseconds their processes
take to start. Each round here makes 3 nginx containers (shaped as `docker run -d -p
127.0.0.1::80`: the bench's baseline) through the Engine API, each by its own thread and
connection (create, then start, as the agent does), released together (`together`; with
the agent's pull attempt of the `:latest` image beside each create, `together+pull`), or
the second and third `s` and `2s` seconds after the first (`stagger S`); and, as the bench's
baseline itself, 3 `docker run -d` processes started at once (`docker run`). The figure is
from the first send to the engine's StartedAt of the last container (the engine's clock),
with the last create's answer beside it. Shapes rotate from round to round; every container
carries LABEL and is removed by id, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence

import docker

from tests.bench.engine import IMAGE, clear_for_trial, last_start, list_containers, shielded

LABEL = "pinnace.bench.burst"
REPLICAS = 3


def offsets(shape: str, replicas: int = REPLICAS) -> list[float]:
    """When each container's create leaves, seconds after the first: `together` all at 0,
    `stagger S` i * S."""
    if shape in ("together", "together+pull"):
        return [0.0] * replicas
    if shape.startswith("stagger "):
        step = float(shape.split(" ", 1)[1])
        return [i * step for i in range(replicas)]
    raise ValueError(f"unknown shape {shape!r}")


def rotated(shapes: Sequence[str], round_index: int) -> list[str]:
    """The shapes in round `round_index`'s order: rotated by one each round, so no shape
    always runs first on an engine fresh from the last round's teardown."""
    k = round_index % len(shapes)
    return [*shapes[k:], *shapes[:k]]


def summary(values: Sequence[float]) -> str:
    """`median (min-max)` in seconds."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def _pull_attempt() -> None:
    """What pinnace's agent sends beside each create of an `:latest` image (imagePullPolicy
    Always): a pull, which fails here for want of a registry."""
    api = docker.APIClient()
    try:
        with contextlib.suppress(docker.errors.APIError):
            api.pull(IMAGE)
    finally:
        api.close()


def _api_burst(label: str, delays: Sequence[float], pulls: bool = False) -> tuple[float, float]:
    """Creates and starts len(delays) containers, each in its own thread and client, the
    i-th sent delays[i] after the release (with `pulls`, a pull attempt beside each create,
    as the agent sends); (wall time of the release, of the last create's answer)."""
    barrier = threading.Barrier(len(delays) + 1)
    created: list[float] = []
    errors: list[BaseException] = []
    release = [0.0]

    def one(delay: float) -> None:
        api = docker.APIClient()
        try:
            barrier.wait()
            time.sleep(max(0.0, release[0] + delay - time.time()))
            if pulls:
                threading.Thread(target=_pull_attempt, daemon=True).start()
            host = api.create_host_config(port_bindings={80: ("127.0.0.1", None)})
            cid = api.create_container(
                IMAGE, labels={LABEL: label}, ports=[80], host_config=host, detach=True
            )["Id"]
            created.append(time.time())
            api.start(cid)
        except BaseException as e:  # reported by the caller
            errors.append(e)
        finally:
            api.close()

    threads = [threading.Thread(target=one, args=(d,)) for d in delays]
    for t in threads:
        t.start()
    release[0] = time.time()
    barrier.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return release[0], max(created)


def _cli_burst(label: str, replicas: int) -> tuple[float, float]:
    """The apply_to_running baseline: `replicas` `docker run -d` processes at once."""
    cmd = ["docker", "run", "-d", "-p", "127.0.0.1::80", "--label", f"{LABEL}={label}", IMAGE]
    start = time.time()
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(replicas)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"docker run failed: {err.decode().strip()}")
    return start, float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.burst_shape")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--stagger", default="0.01,0.03", help="comma-separated S, seconds")
    args = parser.parse_args(argv)
    staggered = [f"stagger {s}" for s in args.stagger.split(",") if s]
    shapes = ["together", "together+pull", *staggered, "docker run"]
    client = docker.from_env()
    run_id = uuid.uuid4().hex[:6]
    results: dict[str, list[float]] = {s: [] for s in shapes}
    try:
        for r in range(args.rounds):
            for shape in rotated(shapes, r):
                gate = clear_for_trial(client, [f"{LABEL}={run_id}-{shape}"])
                label = f"{run_id}-{shape}"
                try:
                    if shape == "docker run":
                        sent, created = _cli_burst(label, REPLICAS)
                    else:
                        pulls = shape.endswith("+pull")
                        sent, created = _api_burst(label, offsets(shape), pulls)
                    found = list_containers(client, f"{LABEL}={label}")
                    last = last_start(client, found) - sent
                finally:
                    with shielded():
                        for c in list_containers(client, f"{LABEL}={label}", running_only=False):
                            with contextlib.suppress(docker.errors.APIError):
                                client.api.remove_container(c["Id"], force=True)
                results[shape].append(last)
                print(
                    f"round {r + 1} {shape:<14} last start {last:.3f} s, last create answered "
                    f"{created - sent:.3f} s (waited {gate.waited:.1f} s to start clear)",
                    flush=True,
                )
    finally:
        for c in list_containers(client, LABEL, running_only=False):
            with contextlib.suppress(docker.errors.APIError):
                client.api.remove_container(c["Id"], force=True)
        client.close()
    print("first send -> the last container's StartedAt, median (min-max):")
    for shape, values in results.items():
        print(f"  {shape:<14} {summary(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
