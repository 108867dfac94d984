"""Routes as `ip -j route show` lists them, and running a command with a one-sentence error.

The agent reads and changes routing tables in two places — the service range inside each
pod's network namespace (agent/nodeproxy/podroute(s).py) and other nodes' pod subnets on
this machine (agent/hostgw/) — through the same `ip` tool; this is their common part.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    """One IPv4 route of a main table, as `ip -j -4 route show` describes it."""

    dst: str
    gateway: str = ""
    protocol: str = ""


def parse_routes(text: str) -> tuple[Route, ...]:
    """`ip -j -4 route show` output -> its routes ("" or junk: none)."""
    try:
        rows = json.loads(text or "[]")
    except ValueError:
        return ()
    if not isinstance(rows, list):
        return ()
    return tuple(
        Route(str(r.get("dst", "")), str(r.get("gateway", "")), str(r.get("protocol", "")))
        for r in rows
        if isinstance(r, dict)
    )


def run_explained(argv: Sequence[str], error: type[Exception], missing: str, refused: str) -> str:
    """Run `argv`; its output. A command that cannot run raises `error` ending in `missing`
    (what to install), one that fails raises it ending in `refused` (what it needs)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise error(f"cannot run {' '.join(argv)}: {e}; {missing}") from None
    if done.returncode != 0:
        raise error(
            f"{' '.join(argv)} failed: {done.stderr.strip() or f'exit {done.returncode}'}; "
            f"{refused}"
        )
    return done.stdout
