"""When a controller pass gives way to the agents' streams (pure): the master stopped reading them.

A pass runs in steps of ~20 ms of the loop's CPU (master/controllers/slicing.py) and lets the
loop run whatever is ready between two (`asyncio.sleep(0)`). At 5,000 hollow nodes / 50,000
pods (tests/bench/hollow.py --trace) that was not enough for the agents' streams: through
each of the five passes that create, decide and bind 10,000 pods (4-11 s each), the master
read no heartbeat and no status report at all; it read them in the 1 s rest after each pass
(master/controllers/pacing.py) and in a 26 s tail after the last one. Heartbeats sent during
a pass were read 10-37 s late, later for some nodes than the fleet's read backlog excuses
(master/controllers/read_backlog.py: its 90th percentile), and 178 healthy nodes were judged
NotReady by their lease, 27 pods evicted. The loop's own lateness (loop_held.py) excused
little of it: between two 20 ms steps the loop was on time; the streams' reading (gRPC's
threads, then the loop's read callbacks) is what waited behind the pass's CPU.

The cause, found after this was built: gRPC's poller thread wakes the loop with one byte a
completion on a socketpair that holds 278, and the loop's reader took one byte a turn, so
past 278 completions the master read one a 20 ms step (master/grpc_wakeups.py drains it
whole since). With the drain, beats are read within 1.4-2.5 s through a 5,000-node apply
(11-19 s before), and this wait mostly waits while the loop sends; two runs with it off were
no faster on a quiet machine (24.2 and 25.3 s against 22.2 s with it). Kept as the safety
net it is for a loop that reads late for another reason, until interleaved runs say
whether to drop it (issue 15's note).

So between two steps the pass looks at when the master last read a heartbeat: once it has
read none for `STARVED_BEATS` of the fleet's own rate (the rate it read them at before, from
the read backlog's samples), and at least 0.1 s (10 beats at 50 a second are 0.2 s; a
3-node cluster beating every second 3.3 s, longer than any of its passes), and not for more
than `GIVE_UP_SECONDS` (a fleet that went silent is not the master's backlog), the pass
sleeps in slices of `SLICE_SECONDS` until a beat is read or `MOST_SECONDS` went by. The
streams are read while the pass is asleep, as they were in the rests; the pass goes on as
soon as they are.

Not longer than the pass is owed rest (the controllers keep half the loop:
master/controllers/pacing.py), and what it waited is taken off its rest after. And not
while nothing else runs: a first version waited whenever no beat had been read for 0.1 s,
and in the same bench it waited 59 s in all, much of it with the loop idle (no beat arrived:
the fleet's own quiet spells, not the master's), the apply 94.6 s against 64.9 (no node
NotReady against 178). A slice in which the loop's thread barely ran and that ended on
time (`loop_idle`) ends the wait: the pass held nothing up.
"""

from __future__ import annotations

# Silence, in the fleet's beats (at the rate they were read), that says reading stopped.
STARVED_BEATS = 10.0
# Never judged starved sooner than this (jitter of a busy loop).
MIN_STARVED_SECONDS = 0.1
# No read for longer than this: the fleet went silent (or the master's network); the pass
# does not wait for it.
GIVE_UP_SECONDS = 30.0
# A step waits in slices of this long, for at most MOST_SECONDS.
SLICE_SECONDS = 0.02
MOST_SECONDS = 0.5


# A slice in which the loop's thread ran less than this share of it, and that ended no later
# than IDLE_LATENESS_SECONDS after it was due, found the loop idle (a loop starved of a CPU
# wakes late: not idle).
IDLE_CPU_SHARE = 0.25
IDLE_LATENESS_SECONDS = 0.005


def loop_idle(asked: float, slept: float, cpu: float) -> bool:
    """Whether a sleep of `asked` seconds that took `slept`, the loop's thread using `cpu`
    seconds meanwhile, found the loop with nothing else to run."""
    return cpu < IDLE_CPU_SHARE * asked and slept - asked <= IDLE_LATENESS_SECONDS


def reads_starved(since_read: float, rate: float) -> bool:
    """Whether the master, having read no heartbeat for `since_read` seconds, from a fleet
    whose beats it read at `rate` a second before, has stopped reading its streams."""
    if rate <= 0 or since_read > GIVE_UP_SECONDS:
        return False
    return since_read >= max(MIN_STARVED_SECONDS, STARVED_BEATS / rate)
