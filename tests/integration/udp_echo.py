"""A UDP echo server and client in pods' network namespaces, for the UDP Service tests.

None of the images the tests build has a UDP server or client, so both run the host's
Python inside a pod container's network namespace (nsenter by the container's PID, as
root): the server answers `<name> <what it got>` on 5353/UDP, the client sends one
datagram from a fixed source port (so a test can follow one client flow) and returns the
answer, or "" when none came. Used by tests/integration/test_service_vips.py and the
compose cluster's test (tests/e2e/test_compose_demo.py).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

ECHO_SERVER = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('', 5353))\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    data, peer = s.recvfrom(512)\n"
    "    s.sendto(sys.argv[1].encode() + b' ' + data.strip(), peer)\n"
)


def in_pod(container: Any, *command: str) -> list[str]:
    """`command` in the pod container's network namespace (nsenter by its PID)."""
    container.reload()
    return ["nsenter", "-t", str(container.attrs["State"]["Pid"]), "-n", *command]


def serve_udp(container: Any, name: str) -> subprocess.Popen[str]:
    """A UDP echo server on 5353 in the pod's network namespace, answering as `name`;
    the caller kills it (by its Popen)."""
    server = subprocess.Popen(
        in_pod(container, sys.executable, "-c", ECHO_SERVER, name),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def stop(server: subprocess.Popen[str]) -> None:
    server.kill()
    server.wait()
    if server.stdout is not None:
        server.stdout.close()


def udp_ask(container: Any, address: str, port: int, source_port: int) -> str:
    """One datagram from inside the pod's network namespace, from `source_port`; the
    answer or ""."""
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('', {source_port}))\n"
        "s.settimeout(0.5)\n"
        f"s.sendto(b'ping\\n', ({address!r}, {port}))\n"
        "try:\n    print(s.recv(512).decode().strip())\n"
        "except OSError:\n    pass\n"
    )
    done = subprocess.run(
        in_pod(container, sys.executable, "-c", script),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.stdout.strip()
