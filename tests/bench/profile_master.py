"""Run the master under yappi and save its profile at exit (pstat format).

    python -m tests.bench.profile_master OUT CLOCK master --listen ...

CLOCK is `cpu` (where the master's CPU goes, every thread) or `wall` (where its
time goes, waits included). tests/bench/hollow.py uses it for `--profile-master`.
Read the result with pstats: `Stats(OUT).sort_stats("tottime").print_stats(40)`.
yappi is not a dependency of pinnace: `pip install yappi` into the venv first.
"""

from __future__ import annotations

import atexit
import runpy
import signal
import sys


def main() -> None:
    import yappi  # type: ignore[import-not-found, import-untyped, unused-ignore]

    out, clock = sys.argv[1], sys.argv[2]
    yappi.set_clock_type(clock)
    yappi.start(builtins=False)

    def dump() -> None:
        yappi.stop()
        yappi.get_func_stats().save(out, type="pstat")

    atexit.register(dump)
    # SIGUSR1: forget what was profiled so far (hollow.py sends it when its steady-state
    # window starts, so the profile is of that window and what follows).
    signal.signal(signal.SIGUSR1, lambda *_: yappi.clear_stats())
    sys.argv = ["master.cli.main", *sys.argv[3:]]
    runpy.run_module("master.cli.main", run_name="__main__")


if __name__ == "__main__":
    main()
