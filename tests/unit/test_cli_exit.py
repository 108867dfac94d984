"""`pinnace` ends a kubectl-style verb without the interpreter's teardown, output intact.

The teardown (gRPC, protobuf, ~250 modules) was ~20 ms of CPU after every command, on
the cores the engine needs to start what an `apply` asked for (issue 15). What must
hold: everything the command wrote arrives, its exit status stands, and the master,
which runs its own shutdown, still ends as usual.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time

import pytest

from master.cli import main as cli_main
from tests.support import REPO

# Runs `pinnace <argv>` as the program does, the command itself replaced by `body`.
PROBE = """\
import atexit, sys
atexit.register(lambda: print("teardown ran", flush=True))
import master.cli.main as m
from master.cli.client import CliError
def command(*args, **kwargs):
{body}
m.{replaced} = command
sys.argv = ["pinnace", *{argv!r}]
m.run()
"""


def _program(replaced: str, body: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    probe = PROBE.format(replaced=replaced, body=body, argv=argv)
    # Buffered output, as a user's shell runs it (sessions here may set PYTHONUNBUFFERED).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_verb_ends_without_teardown_and_its_output_arrives_whole() -> None:
    # Many small writes: most of them sit in stdout's buffer when the command returns.
    body = "    for i in range(5000):\n        print(i)\n    return 3"

    done = _program("_run_command", body, ["--insecure", "get", "pods"])

    assert done.returncode == 3
    assert done.stdout == "".join(f"{i}\n" for i in range(5000))  # no "teardown ran"


def test_a_failed_verb_still_says_why_and_exits_1() -> None:
    body = '    raise CliError("error: the master refused the call: no")'

    done = _program("_run_command", body, ["--insecure", "apply", "-f", "x.yaml"])

    assert (done.returncode, done.stderr, done.stdout) == (
        1,
        "error: the master refused the call: no\n",
        "",
    )


def test_the_master_ends_as_usual() -> None:
    done = _program("_run_master", "    return 0", ["master", "--insecure"])

    assert (done.returncode, done.stdout) == (0, "teardown ran\n")


def test_a_verb_gets_the_garbage_collector_back_once_it_runs_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_main, "COLLECTOR_OFF_SECONDS", 0.05)
    assert gc.isenabled()
    try:
        cli_main._collect_later("get")
        assert not gc.isenabled()
        deadline = time.monotonic() + 10
        while not gc.isenabled() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.isenabled()
    finally:
        gc.enable()


def test_apply_keeps_the_collector_off_without_a_timer_thread() -> None:
    # `apply` sends one request and ends: no Timer thread (nor threading's import) for it.
    before = set(threading.enumerate())
    try:
        cli_main._collect_later("apply")
        assert not gc.isenabled()
        assert set(threading.enumerate()) == before
    finally:
        gc.enable()
