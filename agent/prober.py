"""Runs one probe against a container: an HTTP GET, a TCP connect, or a command (the I/O).

agent/probes.py decides which probes are due and aims them (address and port);
this module performs one and returns a ProbeResult whose message reads like the
kubelet's ("HTTP probe failed with statuscode: 404"). Every probe is bounded by
its timeoutSeconds; an error never escapes as an exception, it is the probe's
failure. HTTP is spoken directly over asyncio streams (one GET, Connection:
close, only the status line read): a probe needs no client library, and a
2xx or 3xx status passes, as in Kubernetes. Exec goes through the Runtime port,
since only agent/runtime/ talks to the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex

from agent.model import Probe
from agent.probes import ProbeResult, ProbeTarget
from agent.runtime.port import Runtime, RuntimeFailure

USER_AGENT = "pinnace-probe/1.0"
# The status line is all a probe reads; a server sending more before a newline is broken.
_STATUS_LINE_MAX = 8192
_OUTPUT_SHOWN = 200
_LABELS = {"httpGet": "HTTP", "tcpSocket": "TCP", "exec": "exec"}


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_request(host: str, port: int, probe: Probe) -> bytes:
    """The GET a probe sends; the probe's own headers replace the defaults of the same name."""
    path = probe.path if probe.path.startswith("/") else "/" + probe.path
    headers = {
        "host": ("Host", _authority(host, port)),
        "user-agent": ("User-Agent", USER_AGENT),
        "accept": ("Accept", "*/*"),
    }
    for h in probe.http_headers:
        headers[h.name.lower()] = (h.name, h.value)
    headers["connection"] = ("Connection", "close")
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.values()), "", ""]
    return "\r\n".join(lines).encode("latin-1", errors="replace")


def parse_status_line(line: bytes) -> int | None:
    """The status code of "HTTP/1.1 200 OK", or None when it is not an HTTP status line."""
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, limit=_STATUS_LINE_MAX)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def http_get(host: str, port: int, probe: Probe) -> ProbeResult:
    reader, writer = await _connect(host, port)
    try:
        writer.write(http_request(host, port, probe))
        await writer.drain()
        try:
            line = await reader.readline()
        except ValueError:  # longer than the stream's limit
            line = b""
    finally:
        await _close(writer)
    if not line:
        # What a published port answers while nothing listens behind it yet.
        where = _authority(host, port)
        return ProbeResult(False, f"HTTP probe failed: {where}: closed without a response")
    code = parse_status_line(line)
    if code is None:
        return ProbeResult(False, "HTTP probe failed: the reply is not an HTTP response")
    if 200 <= code < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {code}")


async def tcp_connect(host: str, port: int) -> ProbeResult:
    _, writer = await _connect(host, port)
    await _close(writer)
    return ProbeResult(True)


async def exec_command(
    runtime: Runtime, container_id: str, command: tuple[str, ...]
) -> ProbeResult:
    result = await runtime.exec(container_id, command)
    if result.exit_code == 0:
        return ProbeResult(True)
    output = result.output.strip()
    shown = f": {output[-_OUTPUT_SHOWN:]}" if output else ""
    return ProbeResult(
        False, f"command {shlex.join(command)} exited with {result.exit_code}{shown}"
    )


def _os_reason(exc: OSError) -> str:
    # asyncio's own texts ("Connect call failed ('127.0.0.1', 80)") repeat the address.
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    return exc.strerror or str(exc) or type(exc).__name__


async def run_probe(target: ProbeTarget, runtime: Runtime) -> ProbeResult:
    """Performs one probe, within its timeout; every error is a failed result."""
    probe = target.probe
    label = _LABELS.get(probe.kind, probe.kind)
    if target.error:
        return ProbeResult(False, f"{label} probe failed: {target.error}")
    where = _authority(target.host, target.port)
    try:
        async with asyncio.timeout(probe.timeout_seconds):
            if probe.kind == "httpGet":
                return await http_get(target.host, target.port, probe)
            if probe.kind == "tcpSocket":
                return await tcp_connect(target.host, target.port)
            if probe.kind == "exec":
                return await exec_command(runtime, target.container_id, probe.command)
    except TimeoutError:
        to = f" to {where}" if probe.kind != "exec" else ""
        return ProbeResult(False, f"{label} probe{to} timed out after {probe.timeout_seconds}s")
    except RuntimeFailure as exc:
        return ProbeResult(False, f"exec probe failed: {exc}")
    except OSError as exc:
        return ProbeResult(False, f"{label} probe failed: {where}: {_os_reason(exc)}")
    return ProbeResult(False, f"unknown probe kind {probe.kind!r}")
