"""Benchmark: how a claim's file is made and mounted, option by option, side by side.

Run as root: `python -m tests.bench.claim_fs [--gib 1] [--syncs 500] [--rounds 9]`.
tests/bench/storage.py measures the product end to end (a pod on a claim, through
`docker exec` and `dd`, whose process starts are most of each fsync's time); this one
asks which way of making the claim's filesystem costs what, with nothing else in the
way: system calls from this process on each target, on the claim disk's own filesystem.

Targets: a plain directory of the host disk (what a plain Docker volume is), and claim
files of `--gib` made in several ways (the `now` one with the agent's own commands,
agent/claim_disks.py `mkfs_commands`), each loop-mounted as the agent does:

- fsync: `--syncs` rounds of open, write 4 KiB, fsync, close, the targets taking turns
  in a fresh random order each round (a load burst from the machine's other users falls
  on all alike); the median latency (and the 90th percentile) per target;
- sequential: `--rounds` writes of 64 MiB in 1 MiB blocks plus fsync, rotating order,
  the disk flushed before each; median and worst MiB/s;
- the time to make the file (allocate or write it, mkfs), per GiB.

Prints one table with the load average; appends one JSON line to results.jsonl. Every
file, mount and loop device it makes is removed, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agent.claim_disks import DEFAULT_ROOT, image_bytes, mkfs_commands
from tests.bench.procs import REPO

RESULTS = REPO / "tests" / "bench" / "results.jsonl"
MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class Way:
    label: str
    zeros: bool  # write the whole file with zeros (written extents) instead of fallocate
    mkfs: int  # which of mkfs_commands (0: fast_commit; 2: plain ext4, as before)
    loop: tuple[str, ...] = ("--direct-io=on",)


WAYS = {
    "before": Way("fallocate, ext4 (before)", False, 2),
    "now": Way("fallocate, ext4 fast_commit (now)", False, 0),
    "zeros": Way("zero-written, ext4 fast_commit", True, 0),
    "sector4k": Way(
        "fallocate, fast_commit, loop 4 KiB", False, 0, ("--direct-io=on", "-b", "4096")
    ),
    "buffered": Way("fallocate, ext4, loop buffered", False, 2, ("--direct-io=off",)),
}


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _make(root: Path, name: str, way: Way, size: int) -> tuple[Path, str, float]:
    """The claim mounted at root/name: (mountpoint, loop device, seconds to make it)."""
    image, mnt = root / f"{name}.img", root / name
    start = time.perf_counter()
    fd = os.open(image, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if way.zeros:
            block = bytes(8 * MIB)
            for offset in range(0, size, len(block)):
                os.pwrite(fd, block[: min(len(block), size - offset)], offset)
        else:
            os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    _run(*mkfs_commands(str(image))[way.mkfs])
    made = time.perf_counter() - start
    loop = _run("losetup", "--find", "--show", *way.loop, str(image)).strip()
    mnt.mkdir()
    _run("mount", "-t", "ext4", "-o", "nodev,nosuid", loop, str(mnt))
    return mnt, loop, made


def _fsync_once(directory: Path, block: bytes) -> float:
    start = time.perf_counter()
    fd = os.open(directory / "sync", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def _sequential(directory: Path, mib: int) -> float:
    block = bytes(MIB)
    start = time.perf_counter()
    fd = os.open(directory / "seq", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(mib):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    rate = mib / (time.perf_counter() - start)
    (directory / "seq").unlink()
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--syncs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--ways", default=",".join(WAYS), help="comma-separated, of: " + ",".join(WAYS)
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("claim_fs: run as root (loop devices)", file=sys.stderr)
        return 1
    size = image_bytes(int(args.gib * GIB))
    root = Path(DEFAULT_ROOT) / f"bench-claim-fs-{os.getpid()}"
    root.mkdir(parents=True)
    dirs = {"host": root / "host"}
    dirs["host"].mkdir()
    mounted: list[tuple[Path, str]] = []
    made: dict[str, float] = {}
    latencies: dict[str, list[float]] = {}
    seqs: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    try:
        for name in args.ways.split(","):
            mnt, loop, seconds = _make(root, name, WAYS[name], size)
            mounted.append((mnt, loop))
            dirs[name], made[name] = mnt, seconds
        latencies = {k: [] for k in dirs}
        seqs = {k: [] for k in dirs}
        block = bytes(4096)
        keys = list(dirs)
        for _ in range(args.syncs):
            random.shuffle(keys)
            for k in keys:
                latencies[k].append(_fsync_once(dirs[k], block))
        keys = list(dirs)
        for r in range(args.rounds):
            for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
                os.sync()
                seqs[k].append(_sequential(dirs[k], 64))
    finally:
        for mnt, loop in mounted:
            subprocess.run(["umount", str(mnt)], check=False)
            subprocess.run(["losetup", "-d", loop], check=False)
        shutil.rmtree(root, ignore_errors=True)
    load = (load_before, os.getloadavg())
    print(_table(latencies, seqs, made, size))
    print(f"load average (1, 5, 15 min): before {load[0]}, after {load[1]}")
    with RESULTS.open("a") as fh:
        line = {"bench": "claim_fs", "at": time.time(), "size": size, "made": made}
        line |= {"fsync_s": latencies, "seq_mib_s": seqs, "load": [list(x) for x in load]}
        fh.write(json.dumps(line) + "\n")
    return 0


def _table(
    latencies: dict[str, list[float]],
    seqs: dict[str, list[float]],
    made: dict[str, float],
    size: int,
) -> str:
    base_sync = statistics.median(latencies["host"])
    base_seq = statistics.median(seqs["host"])
    head = f"{'target':38} | {'fsync ms med (p90)':18} | {'vs host':7} | "
    head += f"{'seq MiB/s med (worst)':21} | {'vs host':7} | make s/GiB"
    lines = [head]
    for k in latencies:
        med = statistics.median(latencies[k])
        p90 = statistics.quantiles(latencies[k], n=10)[8]
        seq = statistics.median(seqs[k])
        label = "host directory" if k == "host" else WAYS[k].label
        per_gib = f"{made[k] / (size / GIB):.1f}" if k in made else "-"
        lines.append(
            f"{label:38} | {med * 1e3:6.3f} ({p90 * 1e3:6.3f})    | {base_sync / med:6.2f}x | "
            f"{seq:7.1f} ({min(seqs[k]):6.1f})      | {seq / base_seq:6.2f}x | {per_gib}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
