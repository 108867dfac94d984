"""Run the master, and say where its memory is each time it gets SIGUSR1.

    python -m tests.bench.memory_probe OUT master --listen ...   (a master under the probe)
    python -m tests.bench.memory_probe --top SNAP [--base SNAP] [--frames N] [--per N]

The master's RSS is more than what tracemalloc sees: pymalloc's arenas hold freed blocks
between live ones, glibc's heap keeps what a transient peak freed, and the C libraries
(gRPC, BoringSSL, protobuf's upb arenas) allocate where tracemalloc never looks. Each
SIGUSR1 appends one JSON line to OUT.jsonl with every one of those, side by side:

  rss             the process's resident bytes (/proc/self/statm)
  malloc          glibc's mallinfo2 over every arena: in use (uordblks + hblkhd), free
                  in the heaps (fordblks), mmapped (hblkhd), and the arenas' number
  pymalloc        sys._debugmallocstats' totals: arenas (1 MiB each, mmapped apart from
                  glibc), bytes in allocated blocks, free in used pools, unused pools
  traced          tracemalloc's traced bytes (and its own overhead) once it traces
  objects         gc-tracked objects by type, the frozen ones too (top 40)

The first SIGUSR1 starts tracemalloc (PINNACE_PROBE_FRAMES frames, default 10; 0: never,
for pymalloc's totals, which tracemalloc's hooks hide, and an RSS without its cost), so what
a later snapshot holds is what was allocated after it and is still alive (the per-pod
cost when the first comes after the joins and a later one after the apply); each later
one saves a snapshot to OUT-<n>.snap. SIGUSR2 does the same as SIGUSR1, then calls
malloc_trim(0) and notes the RSS after it (what glibc could give back) and how long the
trim took. tests/bench/hollow.py --memory-probe OUT runs its master under this and signals
after the joins, once all pods are Running, and at the end of its window.

`--top` prints a snapshot's largest allocation sites grouped by traceback (`--base`: the
growth from another snapshot), and `--per N` divides by N (pods).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import runpy
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from typing import Any


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def libc() -> ctypes.CDLL:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def malloc_stats(libc: ctypes.CDLL) -> dict[str, int]:
    info = libc.mallinfo2()
    return {
        "heap": info.arena,
        "in_use": info.uordblks + info.hblkhd,
        "free": info.fordblks,
        "mmapped": info.hblkhd,
        "top_releasable": info.keepcost,
    }


def pymalloc_stats() -> dict[str, int]:
    """The totals sys._debugmallocstats writes on the C stderr (read through a file)."""
    with tempfile.TemporaryFile() as f:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(f.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")
    wanted = {
        "# arenas allocated current": "arenas",
        "# bytes in allocated blocks": "allocated",
        "# bytes in available blocks": "free_in_pools",
        "Total": "total",
    }
    found: dict[str, int] = {}
    for line in text.splitlines():
        label, _, value = line.rpartition("=")
        for prefix, key in wanted.items():
            if label.strip().startswith(prefix) and key not in found:
                found[key] = int(value.strip().replace(",", ""))
        if "unused pools *" in label:
            found["unused_pools"] = int(value.strip().replace(",", ""))
    return found


def object_counts(top: int = 40) -> list[tuple[str, int]]:
    """gc-tracked objects by type name, frozen ones included (unfrozen to be listed)."""
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    try:
        counts = Counter(type(o).__qualname__ for o in gc.get_objects())
    finally:
        if frozen:
            gc.freeze()
    return counts.most_common(top)


def probe(out: str) -> None:
    lib = libc()
    seen = [0]

    def report(trim: bool) -> None:
        seen[0] += 1
        row: dict[str, Any] = {"n": seen[0], "at": time.time(), "rss": rss_bytes()}
        row["malloc"] = malloc_stats(lib)
        # (Empty while tracemalloc traces: its hooks hide pymalloc from the stats.)
        row["pymalloc"] = pymalloc_stats()
        row["blocks"] = sys.getallocatedblocks()
        row["objects"] = object_counts()
        frames = int(os.environ.get("PINNACE_PROBE_FRAMES", "10"))
        if tracemalloc.is_tracing():
            snap = tracemalloc.take_snapshot()
            path = f"{out}-{seen[0]}.snap"
            snap.dump(path)
            row["snapshot"] = path
            row["traced"] = tracemalloc.get_traced_memory()[0]
            row["tracemalloc_overhead"] = tracemalloc.get_tracemalloc_memory()
        elif frames:
            tracemalloc.start(frames)
            row["traced_from_here"] = True
        if trim:
            started = time.perf_counter()
            lib.malloc_trim(0)
            # The trim runs here, on the loop's thread (a signal handler): this is how long
            # it held the loop, and glibc's arena locks (every other thread's malloc).
            row["trim_seconds"] = time.perf_counter() - started
            row["rss_after_trim"] = rss_bytes()
            row["malloc_after_trim"] = malloc_stats(lib)
        with open(f"{out}.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    signal.signal(signal.SIGUSR1, lambda *_: report(False))
    signal.signal(signal.SIGUSR2, lambda *_: report(True))


def top(path: str, base: str, frames: int, per: int, limit: int) -> None:
    snap = tracemalloc.Snapshot.load(path)
    if base:
        stats: list[Any] = snap.compare_to(tracemalloc.Snapshot.load(base), "traceback")
        total = sum(s.size_diff for s in stats)
    else:
        stats = snap.statistics("traceback")
        total = sum(s.size for s in stats)
    # Group by the innermost `frames` frames of our own code (the library frames beneath
    # them say less than who called them).
    grouped: Counter[tuple[str, ...]] = Counter()
    counts: Counter[tuple[str, ...]] = Counter()
    for s in stats:
        size = s.size_diff if base else s.size
        count = s.count_diff if base else s.count
        lines = [f"{f.filename.rsplit('/', 3)[-2:]}:{f.lineno}" for f in s.traceback]
        ours = [
            f"{'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno}"
            for f in s.traceback
            if "/site-packages/" not in f.filename and "/lib/python3" not in f.filename
        ]
        key = tuple((ours or lines)[-frames:])
        grouped[key] += size
        counts[key] += count
    print(f"total {total / 2**20:.1f} MiB" + (f", {total / per:.0f} B per unit" if per else ""))
    for key, size in grouped.most_common(limit):
        each = f"{size / per:8.1f} B/unit" if per else ""
        print(f"{size / 2**20:8.2f} MiB {counts[key]:9d} blocks {each}  " + " <- ".join(key[::-1]))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--top":
        parser = argparse.ArgumentParser()
        parser.add_argument("--top", required=True)
        parser.add_argument("--base", default="")
        parser.add_argument("--frames", type=int, default=3)
        parser.add_argument("--per", type=int, default=0)
        parser.add_argument("--limit", type=int, default=40)
        args = parser.parse_args()
        top(args.top, args.base, args.frames, args.per, args.limit)
        return
    probe(sys.argv[1])
    sys.argv = ["master.cli.main", *sys.argv[2:]]
    runpy.run_module("master.cli.main", run_name="__main__")


if __name__ == "__main__":
    main()
