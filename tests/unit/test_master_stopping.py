"""The master's stop (master/stopping.py): slow stages named, and a stop that hangs
dumps every thread's stack and exits instead of waiting for a SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from master.stopping import StopTimes


def test_the_slow_stages_of_a_stop_are_named_in_one_sentence() -> None:
    now = [0.0]
    times = StopTimes(lambda: now[0])
    with times.stage("controllers"):
        now[0] += 0.2
    with times.stage("gRPC server and sessions"):
        now[0] += 12.5
    with times.stage("last flush"):
        now[0] += 1.0
    assert times.slow() == "stopping took 13.7s: gRPC server and sessions 12.5s, last flush 1.0s"
    quick = StopTimes(lambda: now[0])
    with quick.stage("controllers"):
        pass
    assert quick.slow() == ""


def test_a_stop_that_hangs_dumps_the_stacks_and_exits_non_zero() -> None:
    # A process whose stop hangs in a synchronous call (no event loop turn will come).
    code = textwrap.dedent(
        """
        import time
        from master.stopping import arm_stop_deadline

        def stuck_in_a_stage():
            time.sleep(60)

        arm_stop_deadline(0.5)
        stuck_in_a_stage()
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "stuck_in_a_stage" in done.stderr  # the stack says where it hung
