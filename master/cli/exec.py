"""`pinnace exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]`.

The command runs in the pod's container on its node; the master relays it over
the node's session (master/api/exec.py), as for `kubectl exec`. Output goes to
this process's stdout and stderr as it comes; with `-i` this process's stdin is
sent (its end closes the command's stdin); with `-t` and a terminal, the local
terminal is switched to raw mode for the duration and its size follows resizes.
The exit code is the command's.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import sys
import termios
import threading
import tty as ttymod
from collections.abc import Iterator
from types import FrameType

from master.cli.client import CliError, MasterClient
from protos import cluster_pb2

_READ_SIZE = 32 * 1024


def exec_requests(
    opening: cluster_pb2.ExecOpen, inputs: queue.Queue[cluster_pb2.ExecRequest | None]
) -> Iterator[cluster_pb2.ExecRequest]:
    """The request stream: the opening, then whatever the input threads queue (None ends it)."""
    yield cluster_pb2.ExecRequest(open=opening)
    while (message := inputs.get()) is not None:
        yield message


def _read_stdin(inputs: queue.Queue[cluster_pb2.ExecRequest | None]) -> None:
    fd = sys.stdin.fileno()
    while True:
        try:
            data = os.read(fd, _READ_SIZE)
        except OSError:
            data = b""
        if not data:
            inputs.put(cluster_pb2.ExecRequest(close_stdin=True))
            return
        inputs.put(cluster_pb2.ExecRequest(stdin=data))


def run_exec(
    address: str,
    pod: str,
    container: str,
    command: list[str],
    stdin: bool,
    tty: bool,
    namespace: str = "default",
    attach: bool = False,
) -> int:
    """`pinnace exec`, or with `attach` (no command) `pinnace attach`: the container's main
    process, its output from now on and, with -i, this stdin to it."""
    if pod.startswith(("pod/", "pods/", "po/")):
        pod = pod.split("/", 1)[1]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command and not attach:
        raise CliError("error: give the command after --, e.g. pinnace exec web -- ls /")
    terminal = tty and stdin and sys.stdin.isatty()
    if tty and not terminal:
        print("Unable to use a TTY - input is not a terminal or the right kind of file",
              file=sys.stderr)  # fmt: skip
    size = shutil.get_terminal_size() if terminal else os.terminal_size((0, 0))
    opening = cluster_pb2.ExecOpen(
        pod=pod, container=container, command=command, stdin=stdin, tty=terminal,
        width=size.columns, height=size.lines, namespace=namespace, attach=attach,
    )  # fmt: skip
    inputs: queue.Queue[cluster_pb2.ExecRequest | None] = queue.Queue()
    if not stdin:
        inputs.put(None)  # nothing to send after the opening: half-close at once
    else:
        threading.Thread(target=_read_stdin, args=(inputs,), daemon=True).start()
    saved = termios.tcgetattr(sys.stdin.fileno()) if terminal else None
    previous_winch = None
    if terminal:

        def resized(_sig: int, _frame: FrameType | None) -> None:
            now = shutil.get_terminal_size()
            inputs.put(cluster_pb2.ExecRequest(width=now.columns, height=now.lines))

        previous_winch = signal.signal(signal.SIGWINCH, resized)
        ttymod.setraw(sys.stdin.fileno())
    client = MasterClient(address)
    code = 0
    try:
        for reply in client.stream(client.stub.Exec, exec_requests(opening, inputs)):
            if reply.exited:
                code = reply.exit_code
                break
            out = sys.stderr.buffer if reply.stream == 2 else sys.stdout.buffer
            out.write(reply.data)
            out.flush()
        else:
            raise CliError("error: the master ended the exec without the command's exit code")
    finally:
        if saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        if previous_winch is not None:
            signal.signal(signal.SIGWINCH, previous_winch)
        inputs.put(None)
        client.close()
    return code if 0 <= code <= 255 else 1
