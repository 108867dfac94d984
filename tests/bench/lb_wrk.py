"""Peak throughput and latency with `wrk` (Debian's package), and the parsing of its report.

The same wrk invocation (threads, connections, duration) is pointed at every target of the
throughput table, so the rows differ only in what sits between wrk and nginx: nothing (one pod's
published port), pinnace's HAProxy, or Swarm's routing mesh. wrk keeps its connections open
(HTTP/1.1 keep-alive), which is how a busy client meets a load balancer. `parse_wrk` is pure: it
reads wrk's `--latency` text into a `WrkResult`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

WRK_MISSING = (
    "wrk is not installed, so the throughput table is skipped: install it with "
    "`apt-get install -y wrk` (Debian's package) and run the bench again"
)

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx/3xx answers


class WrkError(Exception):
    """wrk did not run, or printed something this parser does not understand."""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def parse_wrk(text: str) -> WrkResult:
    latencies = {
        m.group(1): float(m.group(2)) * _UNITS[m.group(3)] for m in _LATENCY.finditer(text)
    }
    rps = _RPS.search(text)
    total = _TOTAL.search(text)
    if rps is None or total is None or set(latencies) != {"50", "99"}:
        raise WrkError(f"cannot read wrk's report: {text.strip()[-400:]!r}")
    errors = 0
    socket = _SOCKET.search(text)
    if socket:
        errors += sum(int(g) for g in socket.groups())
    non_2xx = _NON_2XX.search(text)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        p50_ms=latencies["50"],
        p99_ms=latencies["99"],
        requests=int(total.group(1)),
        errors=errors,
    )


def run_wrk(
    port: int, seconds: int, threads: int, connections: int, host: str = "127.0.0.1"
) -> WrkResult:
    """wrk against http://HOST:PORT/ for a bounded time (HOST: loopback, or the IP of one of
    the bench's own containers)."""
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        f"http://{host}:{port}/",
    ]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired as e:
        raise WrkError(f"wrk did not finish within {seconds + 30}s") from e
    if result.returncode != 0:
        raise WrkError(f"wrk exited {result.returncode}: {result.stderr.strip()}")
    return parse_wrk(result.stdout)
