"""Run the master under yappi and save its profile at exit (pstat format).

    python -m tests.bench.profile_master OUT CLOCK master --listen ...

CLOCK is `cpu` (where the master's CPU goes, every thread) or `wall` (where its
time goes, waits included); `cpu@usr1` or `wall@usr1` starts profiling only at the
first SIGUSR1 (a master starting 1,000 nodes under yappi is too slow to join them), and
SIGUSR2 stops it. tests/bench/hollow.py and kube_api.py use it for `--profile-master`.
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

    out, (clock, _, late) = sys.argv[1], sys.argv[2].partition("@")
    yappi.set_clock_type(clock)
    if not late:
        yappi.start(builtins=False)

    def dump() -> None:
        yappi.stop()
        yappi.get_func_stats().save(out, type="pstat")

    def window(*_: object) -> None:
        # SIGUSR1: forget what was profiled so far (hollow.py sends it when its
        # steady-state window starts, so the profile is of that window and what follows).
        if yappi.is_running():
            yappi.clear_stats()
        else:
            yappi.start(builtins=False)

    atexit.register(dump)
    signal.signal(signal.SIGUSR1, window)
    # SIGUSR2: stop profiling (the window ended; what follows, the shutdown, is not in it).
    signal.signal(signal.SIGUSR2, lambda *_: yappi.stop())
    sys.argv = ["master.cli.main", *sys.argv[3:]]
    runpy.run_module("master.cli.main", run_name="__main__")


if __name__ == "__main__":
    main()
