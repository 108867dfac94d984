"""What the master's idle sessions cost a grpc.aio server in CPU, and what changes it.

At 5,000 hollow nodes the master's gRPC core threads (`event_engine`) used more CPU than
its event loop (issue 15), and at steady state the agents send a heartbeat only every
20-30 s: what is left is the master's HTTP/2 keepalive ping to every connection every
second (master/server.py). This bench measures that part alone, without the master: a
grpc.aio server with mutual TLS as the master has it (tests/bench/session_memory.py) and
the master's keepalive options, `--sessions` clients in `--client-processes` other
processes, each with its own connection and one stream that sends a small message every
`--beat` seconds. Once all are up, the server process's CPU (user + system, /proc) over
`--window` seconds, in cores, and its threads' CPU seconds by name.

Each `--variant` is one more run after the baseline, as `ENV=VALUE` (the server's
environment: GRPC_EXPERIMENTS=..., GRPC_POLL_STRATEGY=...), `option:NAME=INT` (one more
server option) or `client:NAME=INT` (one more client channel option), several joined
with `,,`. Each round runs the baseline and then each variant; `--repeat` rounds, so
drift on a shared machine shows.

    python -m tests.bench.ping_cost --sessions 1000 --beat 1 \
        --variant option:grpc.http2.bdp_probe=0

`--ping-rtt` times every keepalive ping instead (the CPU figure is then not the plain
server's: it logs two lines a ping): the server runs with gRPC's `http_keepalive` trace,
and each ping's time from sent to its answer handled (`ping_round_trips`, the server's
own clock, so its own delay counts as the master's would) gives the percentiles and how
many took longer than each answer timeout worth weighing. `--hogs N` runs N busy loops
beside them meanwhile (stopped by PID): a loaded agent machine, on which the answer must
still come within the master's ping answer timeout (master/server.py).

    python -m tests.bench.ping_cost --sessions 1000 --ping-seconds 2 --ping-rtt --hogs 8

Prints one line a run and a table of medians; appends one JSON line per figure to
tests/bench/results.jsonl (`--no-record`: none). Every process it starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from master.server import session_keepalive
from tests.bench.hollow import thread_cpu_s, thread_shares
from tests.bench.results import Figure, record, table
from tests.bench.session_memory import write_pki

BASE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
]


Variant = tuple[dict[str, str], list[tuple[str, int]], list[tuple[str, int]]]

# gRPC's http_keepalive trace (absl log lines): a keepalive ping written, and its ack handled.
_SENT = re.compile(r"^I\d{4} (\d+):(\d+):(\d+\.\d+) .*\]: Ping \d+ sent \[([^\]]+)\]")
_ACKED = re.compile(r"^I\d{4} (\d+):(\d+):(\d+\.\d+) .*\] (\S+): Finish keepalive ping")
# Answer timeouts worth weighing: how many pings took longer than each.
RTT_LIMITS = (0.25, 0.5, 1.0, 1.5, 2.5)


def _seconds(h: str, mi: str, sec: str) -> float:
    return int(h) * 3600 + int(mi) * 60 + float(sec)


def ping_round_trips(lines: list[str], answer_seconds: float) -> tuple[list[float], int]:
    """(seconds from each keepalive ping sent to its answer handled, per connection (the
    peer address), from the server's http_keepalive trace; how many pings had no answer
    though sent `answer_seconds` or more before the trace's last timed line: each ended
    its session). A ping sent later than that with no answer (the run ended first) is not
    counted either way; a day's wrap at midnight is allowed for."""
    sent_at: dict[str, float] = {}
    out: list[float] = []
    unanswered: list[float] = []
    last = None
    for line in lines:
        if m := _SENT.match(line):
            h, mi, sec, peer = m.groups()
            last = _seconds(h, mi, sec)
            if peer in sent_at:
                unanswered.append(sent_at[peer])
            sent_at[peer] = last
        elif m := _ACKED.match(line):
            h, mi, sec, peer = m.groups()
            last = _seconds(h, mi, sec)
            start = sent_at.pop(peer, None)
            if start is not None:
                out.append((last - start) % 86400)
    unanswered += sent_at.values()
    lost = sum(last is not None and (last - t) % 86400 >= answer_seconds for t in unanswered)
    return out, lost


def rtt_summary(rtts: list[float], lost: int) -> str:
    """p50 / p99 / p99.9 / max in ms, how many exceeded each of RTT_LIMITS, and how many
    went unanswered past the answer timeout."""
    if not rtts:
        return f"no pings timed, {lost} unanswered"
    q = statistics.quantiles(rtts, n=1000, method="inclusive")
    over = ", ".join(f"> {t:g} s: {sum(r > t for r in rtts)}" for t in RTT_LIMITS)
    return (
        f"{len(rtts)} pings, p50 {q[499] * 1000:.1f} ms, p99 {q[989] * 1000:.1f}, "
        f"p99.9 {q[998] * 1000:.1f}, max {max(rtts) * 1000:.1f}; {over}; "
        f"unanswered past the answer timeout: {lost}"
    )


def parse_variant(spec: str) -> Variant:
    """`ENV=V,,option:NAME=INT,,client:NAME=INT,,...` -> (server environment, server
    options, client channel options)."""
    env: dict[str, str] = {}
    options: list[tuple[str, int]] = []
    client: list[tuple[str, int]] = []
    for part in filter(None, spec.split(",,")):
        name, _, value = part.partition("=")
        if name.startswith("option:"):
            options.append((name.removeprefix("option:"), int(value)))
        elif name.startswith("client:"):
            client.append((name.removeprefix("client:"), int(value)))
        else:
            env[name] = value
    return env, options, client


def one_run(
    pki: Path,
    args: argparse.Namespace,
    variant: Variant,
    trace: Path | None = None,
) -> tuple[float, str]:
    """(server CPU cores over the window, its threads' shares); with `trace`, the server
    writes gRPC's keepalive trace there."""
    env, options, client = variant
    me = [sys.executable, "-m", "tests.bench.session_memory"]
    keepalive = session_keepalive(args.ping_seconds, args.answer_seconds)
    opts = [*BASE_OPTIONS, *keepalive, *options]
    if trace is not None:
        env = {**env, "GRPC_TRACE": "http_keepalive", "GRPC_VERBOSITY": "INFO"}
        # The trace's "Ping sent" does not say which ping: only keepalive pings, as the
        # master sends (server_options), so a BDP ping is not taken for an unanswered one.
        opts.append(("grpc.http2.bdp_probe", 0))
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(trace.open("w")) if trace is not None else None
        server = subprocess.Popen(
            [*me, "--serve", str(pki), "--option-json", json.dumps(opts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, **env},
        )
    started: list[subprocess.Popen[str]] = []
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        share = -(-args.sessions // args.client_processes)
        for first in range(0, args.sessions, share):
            count = min(share, args.sessions - first)
            argv = [*me, "--clients", str(pki), "--port", str(port), "--sessions", str(count)]
            argv += ["--beat", str(args.beat), "--option-json", json.dumps(client)]
            started.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
        for proc in started:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "up":
                raise RuntimeError(f"client process {proc.pid} ended before its sessions were up")
        for _ in range(args.hogs):
            hogs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(args.settle)
        p = psutil.Process(server.pid)
        c0, t0, w0 = p.cpu_times(), thread_cpu_s(server.pid), time.monotonic()
        time.sleep(args.window)
        c1, t1, w1 = p.cpu_times(), thread_cpu_s(server.pid), time.monotonic()
        cores = (c1.user - c0.user + c1.system - c0.system) / (w1 - w0)
        return cores, thread_shares(t0, t1)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        for proc in started:
            proc.kill()
            proc.wait()
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--beat", type=float, default=30.0, help="seconds between messages")
    parser.add_argument("--ping-seconds", type=float, default=1.0, help="the server's keepalive")
    parser.add_argument(
        "--answer-seconds", type=float, default=2.5, help="the server's ping answer timeout"
    )
    parser.add_argument("--ping-rtt", action="store_true", help="time every ping (trace)")
    parser.add_argument("--hogs", type=int, default=0, help="busy loops beside them")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after all are up")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--variant", action="append", default=[], metavar="SPEC")
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = parser.parse_args()
    specs = ["", *args.variant]
    cores: dict[str, list[float]] = {s: [] for s in specs}
    with tempfile.TemporaryDirectory(prefix="pinnace-ping-cost-") as tmp:
        pki = Path(tmp)
        write_pki(pki)
        for round_ in range(args.repeat):
            for spec in specs:
                trace = pki / "trace.log" if args.ping_rtt else None
                used, shares = one_run(pki, args, parse_variant(spec), trace)
                cores[spec].append(used)
                load = os.getloadavg()[0]
                print(
                    f"round {round_ + 1} {spec or 'baseline'}: {used:.3f} cores, load {load:.1f};"
                    f" {shares}",
                    flush=True,
                )
                if trace is not None:
                    lines = trace.read_text(errors="replace").splitlines()
                    rtts, lost = ping_round_trips(lines, args.answer_seconds)
                    print(f"  ping round trips: {rtt_summary(rtts, lost)}", flush=True)
    found = [
        Figure(
            f"mTLS idle sessions server CPU, {spec or 'baseline'}",
            statistics.median(got),
            "cores",
            f"{args.sessions} sessions, ping {args.ping_seconds:g} s, beat {args.beat:g} s, "
            f"{args.hogs} hogs{', traced' if args.ping_rtt else ''}; "
            f"worst {max(got):.3f} of {len(got)}",
        )
        for spec, got in cores.items()
    ]
    print(table(found))
    if not args.no_record:
        record(found, "python -m tests.bench.ping_cost " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
