"""What each slow write of tests/bench/kube_api.py waited on, from the master's timeline.

The bench notes each write's start and latency on its side; tests/bench/debug_master.py
notes, on the master's side and on the same clock (`time.monotonic()`), the Kubernetes API
requests, commits, store transactions, garbage collections, long loop callbacks, heap
steps and loop-lag stalls (its "timeline"). `explain` (pure) lays every write slower than
a threshold over that timeline and splits its latency:

- `outside`: before the master's handler started and after it ended (the request and the
  answer in flight, the master's loop not reading the socket yet, the bench's own loop);
- `lock`: the commit waiting for the flush lock (behind a background flush's transaction);
- `store`: the commit's own transaction (SQLite's COMMIT and its fsync);
- `loop`: the rest of the handler (parsing, planning, publishing, waiting for the loop).

and names what overlapped it: collections (`gc`, their wall time), loop callbacks over the
stall limit (`held`), heap steps, and loop-lag stalls by cause (busy: the master's own
work; starved: the machine gave it no CPU). `summary` counts the slow writes by their
largest part.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SlowWrite:
    start: float
    latency: float
    outside: float
    lock: float
    store: float
    loop: float
    gc: float
    held: float
    heap: str
    starved: float
    busy: float

    @property
    def cause(self) -> str:
        """The largest part of the latency, with what explains it where something does."""
        parts = {"outside": self.outside, "lock": self.lock, "store": self.store}
        parts["loop"] = self.loop
        largest = max(parts, key=lambda k: parts[k])
        if self.heap:
            return f"{largest} (heap {self.heap})"
        if self.gc >= 0.5 * self.latency - 0.02 and self.gc > 0.02:
            return f"{largest} (gc)"
        if self.held >= 0.5 * self.latency - 0.02 and self.held > 0.02:
            return f"{largest} (callback)"
        if self.starved > self.busy and self.starved > 0.02:
            return f"{largest} (starved)"
        return largest


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def explain(
    writes: list[tuple[float, float]], timeline: list[list[Any]], slower_than: float
) -> list[SlowWrite]:
    """Each write (start, latency) slower than `slower_than`, split and explained."""
    requests = sorted((e[1], e[2]) for e in timeline if e[0] == "req")
    commits = [(e[1], e[2], e[3]) for e in timeline if e[0] == "commit"]
    stores = [(e[1], e[2]) for e in timeline if e[0] == "store"]
    found: list[SlowWrite] = []
    for start, latency in writes:
        if latency < slower_than:
            continue
        end = start + latency
        # The master's side of this write: the first request that started inside it.
        req = next(((s, e) for s, e in requests if start <= s <= end), None)
        s0, s1 = req if req is not None else (end, end)
        commit = next(((c, lk, e) for c, lk, e in commits if s0 <= c <= s1), None)
        lock = store = 0.0
        if commit is not None:
            c0, locked, c1 = commit
            lock = max(0.0, locked - c0)
            store = sum(_overlap(locked, c1, a, b) for a, b in stores)
        outside = latency - (s1 - s0)
        loop = max(0.0, (s1 - s0) - lock - store)

        heap = ",".join(
            e[3] for e in timeline if e[0] == "heap" and _overlap(start, end, e[1], e[2]) > 0
        )
        stalls = [e for e in timeline if e[0] == "lag" and _overlap(start, end, e[1] - e[2], e[1])]

        def over(kind: str, a: float = start, b: float = end) -> float:
            return sum(_overlap(a, b, e[1], e[2]) for e in timeline if e[0] == kind)

        found.append(
            SlowWrite(
                start,
                latency,
                outside,
                lock,
                store,
                loop,
                over("gc"),
                over("cb"),
                heap,
                sum(_overlap(start, end, e[1] - e[2], e[1]) for e in stalls if e[3] == "starved"),
                sum(_overlap(start, end, e[1] - e[2], e[1]) for e in stalls if e[3] == "busy"),
            )
        )
    return found


def summary(slow: list[SlowWrite]) -> list[str]:
    """One line per cause (how many slow writes, their summed latency), largest first."""
    counts: Counter[str] = Counter()
    seconds: dict[str, float] = {}
    for w in slow:
        counts[w.cause] += 1
        seconds[w.cause] = seconds.get(w.cause, 0.0) + w.latency
    ranked = sorted(counts, key=lambda k: -seconds[k])
    return [f"{counts[c]:4d} x  {seconds[c]:6.2f} s  {c}" for c in ranked]


def line(w: SlowWrite, origin: float) -> str:
    ms = 1000
    return (
        f"t={w.start - origin:6.2f}s {w.latency * ms:7.1f} ms: outside {w.outside * ms:6.1f} "
        f"lock {w.lock * ms:6.1f} store {w.store * ms:6.1f} loop {w.loop * ms:6.1f} | "
        f"gc {w.gc * ms:5.1f} held {w.held * ms:5.1f} starved {w.starved * ms:5.1f} "
        f"busy {w.busy * ms:5.1f} {('heap ' + w.heap) if w.heap else ''}-> {w.cause}"
    )
