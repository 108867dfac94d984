"""kubectl's streaming verbs against a running cluster: port-forward (and its helpers).

Used from the kube tests' existing clusters (no cluster of its own): every
kubectl started here is stopped by its PID, even when a check fails.
"""

from __future__ import annotations

import re
import select
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from tests.integration.kube_helpers import Kubectl


def _line_within(proc: subprocess.Popen[str], seconds: float) -> str:
    """The next stdout line of `proc`, or "" when none comes in time or it ended."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    return proc.stdout.readline() if ready else ""


@dataclass
class Forward:
    port: int = 0
    # What kubectl printed on stderr, filled in once it has been stopped.
    stderr: str = ""


@contextmanager
def port_forward(k: Kubectl, target: str, remote: int) -> Iterator[Forward]:
    """`kubectl port-forward TARGET :REMOTE` running, on the local port kubectl chose."""
    proc = subprocess.Popen(
        [k.binary, "port-forward", target, f":{remote}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=k.env,
    )
    forward = Forward()
    try:
        line = _line_within(proc, 30)
        found = re.search(r"127\.0\.0\.1:(\d+) -> ", line)
        if found is None:
            raise AssertionError(f"kubectl port-forward {target} did not start: {line!r}")
        forward.port = int(found.group(1))
        yield forward
    finally:
        if proc.poll() is None:
            proc.kill()
        _, forward.stderr = proc.communicate(timeout=10)


def curl(port: int, path: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", str(int(timeout)), f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        timeout=timeout + 10,
    )


def fetch_in_parallel(port: int, paths: list[str]) -> list[bytes]:
    """Every path fetched at once, each on its own connection; fails on any curl error."""
    with ThreadPoolExecutor(len(paths)) as pool:
        results = list(pool.map(lambda p: curl(port, p), paths))
    for path, r in zip(paths, results, strict=True):
        if r.returncode != 0:
            raise AssertionError(f"curl {path} through the port-forward failed: {r.stderr!r}")
    return [r.stdout for r in results]
