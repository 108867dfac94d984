"""What one mTLS gRPC session costs a grpc.aio server in memory, and what server options change.

At 5,000 hollow nodes the master's RSS grew ~155 KiB a node (issue 15), and at 2,460
joined nodes and no pods its glibc heap held 332 MiB in use with 7 MiB free: the
per-node cost is memory in use in C, not fragmentation. This bench measures the part
that is gRPC's and BoringSSL's alone, without the master: a grpc.aio server process
with one bidirectional-streaming method (echo) and mutual TLS as the master has it (a
P-256 CA, server certificate and client certificate; `require_client_auth`), and
`--sessions` clients in `--client-processes` other processes, each with its own
channel (its own TCP and TLS connection) and one stream that sends a small message
every `--beat` seconds and reads the echo. The server's RSS before the clients and 10 s
after the last stream answered, divided by the sessions, is the cost of one session;
`--insecure` measures the same without TLS.

Each `--option NAME=INT` (repeatable) adds a run with that server option: e.g.
grpc.experimental.tcp_read_chunk_size=2048, grpc.tsi.max_frame_size=4096,
grpc.http2.hpack_table_size.decoder=0. The baseline runs first.

    python -m tests.bench.session_memory --sessions 500

Prints one table and appends one JSON line per figure to tests/bench/results.jsonl
(`--no-record`: none). Every process it starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.bench.results import Figure, record, table

METHOD = "/bench.Echo/Session"


def _issue(
    name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Name] | None, ca: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Name, bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer, issuer_name = issuer if issuer is not None else (key, subject)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key, subject, key_pem, cert.public_bytes(serialization.Encoding.PEM)


def write_pki(out: Path) -> None:
    """ca.pem, server key/cert, client key/cert (P-256, as the master's PKI issues)."""
    ca_key, ca_name, _, ca_pem = _issue("bench-ca", None, ca=True)
    files = {"ca.pem": ca_pem}
    for who in ("server", "client"):
        _, _, key_pem, cert_pem = _issue(who, (ca_key, ca_name), ca=False)
        files[f"{who}-key.pem"], files[f"{who}-cert.pem"] = key_pem, cert_pem
    for name, data in files.items():
        (out / name).write_bytes(data)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def serve(pki: Path, insecure: bool, options: list[tuple[str, int]]) -> None:
    """The server process: prints its port, then its RSS (MiB) for each line on stdin."""

    async def echo(requests, context):  # type: ignore[no-untyped-def]
        async for message in requests:
            yield message

    server = grpc.aio.server(options=options)
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Session": grpc.stream_stream_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    if insecure:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        creds = grpc.ssl_server_credentials(
            [((pki / "server-key.pem").read_bytes(), (pki / "server-cert.pem").read_bytes())],
            root_certificates=(pki / "ca.pem").read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    print(port, flush=True)
    while await asyncio.to_thread(sys.stdin.readline):
        print(json.dumps(rss_mib()), flush=True)
    await server.stop(0)


async def clients(
    pki: Path,
    port: int,
    count: int,
    beat: float,
    insecure: bool,
    extra: tuple[tuple[str, int], ...] = (),
) -> None:
    """A client process: `count` channels with one stream each (`extra`: more channel
    options); prints "up" once all answered."""
    creds = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        (pki / "client-key.pem").read_bytes(),
        (pki / "client-cert.pem").read_bytes(),
    )
    answered = 0

    async def session(i: int) -> None:
        nonlocal answered
        # Its own subchannel pool and channel id: a connection of its own, as each agent has.
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.channel_id", i), *extra]
        target = f"localhost:{port}"
        channel = (
            grpc.aio.insecure_channel(target, options=options)
            if insecure
            else grpc.aio.secure_channel(target, creds, options=options)
        )
        call = channel.stream_stream(METHOD)()
        await call.write(b"hello " + str(i).encode())
        await call.read()
        answered += 1
        while True:
            await asyncio.sleep(beat)
            await call.write(b"beat " + str(i).encode())
            await call.read()

    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(session(i)))
        if i % 20 == 19:
            await asyncio.sleep(0.05)  # a join storm, not a single burst
    while answered < count:
        await asyncio.sleep(0.2)
    print("up", flush=True)
    await asyncio.Event().wait()


def measure(
    pki: Path,
    sessions: int,
    procs: int,
    beat: float,
    insecure: bool,
    options: list[tuple[str, int]],
) -> tuple[float, float]:
    """(server RSS MiB before the clients, KiB per session once they all answered + 10 s)."""
    me = [sys.executable, "-m", "tests.bench.session_memory"]
    server = subprocess.Popen(
        [*me, "--serve", str(pki), "--option-json", json.dumps(options)]
        + (["--insecure"] if insecure else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    started: list[subprocess.Popen[str]] = []
    try:
        assert server.stdin is not None and server.stdout is not None
        port = int(server.stdout.readline())

        def ask() -> float:
            assert server.stdin is not None and server.stdout is not None
            server.stdin.write("rss\n")
            server.stdin.flush()
            return float(json.loads(server.stdout.readline()))

        time.sleep(1)
        base = ask()
        share = -(-sessions // procs)
        for first in range(0, sessions, share):
            count = min(share, sessions - first)
            argv = [*me, "--clients", str(pki), "--port", str(port), "--sessions", str(count)]
            argv += ["--beat", str(beat)] + (["--insecure"] if insecure else [])
            started.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
        for proc in started:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "up":
                raise RuntimeError(f"client process {proc.pid} ended before its sessions were up")
        time.sleep(10)
        full = ask()
        return base, (full - base) * 1024 / sessions
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--beat", type=float, default=2.0, help="seconds between messages")
    parser.add_argument("--insecure", action="store_true", help="plaintext (no TLS)")
    parser.add_argument(
        "--option", action="append", default=[], metavar="NAME=INT", help="a server option run"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--option-json", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        opts = [(str(k), int(v)) for k, v in json.loads(args.option_json)]
        asyncio.run(serve(args.serve, args.insecure, opts))
        return
    if args.clients:
        extra = tuple((str(k), int(v)) for k, v in json.loads(args.option_json))
        asyncio.run(
            clients(args.clients, args.port, args.sessions, args.beat, args.insecure, extra)
        )
        return
    runs: list[tuple[str, list[tuple[str, int]]]] = [("baseline", [])]
    for spec in args.option:
        name, _, value = spec.partition("=")
        runs.append((spec, [(name, int(value))]))
    mode = "plaintext" if args.insecure else "mTLS"
    found = []
    with tempfile.TemporaryDirectory(prefix="pinnace-session-memory-") as tmp:
        pki = Path(tmp)
        write_pki(pki)
        for label, options in runs:
            base, per = measure(
                pki, args.sessions, args.client_processes, args.beat, args.insecure, options
            )
            found.append(
                Figure(
                    f"{mode} session server RSS, {label}",
                    per,
                    "KiB",
                    f"{args.sessions} sessions, beat {args.beat:g} s; "
                    f"server at rest {base:.0f} MiB",
                )
            )
    print(table(found))
    if not args.no_record:
        record(found, "python -m tests.bench.session_memory " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
