"""How many threads HAProxy runs, for the master's load balancer and the agents' node proxies.

HAProxy starts one thread per CPU by default. On a machine with two CPUs or fewer the proxy
shares them with the pods it fronts, the client and pinnace itself: a second thread then
only adds cross-thread wake-ups and locking. Measured on a 2-CPU machine under load (nginx
behind HTTP mode, wrk -t2 -c16/-c64): one thread spent 79-85 us of CPU per request, two
threads 97-99 us. One thread still serves well over ten thousand small requests a second,
more than the pods behind it on such a machine. With more CPUs HAProxy's own default stays
(not measured here).
"""

from __future__ import annotations

# At or below this many CPUs, one thread.
SMALL_MACHINE_CPUS = 2


def haproxy_threads(cpus: int | None) -> int:
    """`nbthread` for a machine with `cpus` CPUs; 0 leaves HAProxy's default (one per CPU)."""
    if cpus is not None and cpus <= SMALL_MACHINE_CPUS:
        return 1
    return 0
