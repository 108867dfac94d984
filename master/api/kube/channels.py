"""The Kubernetes remote-command stream protocol over WebSocket, as pure functions.

`kubectl exec` (1.30+) and the official clients open `GET pods/NAME/exec?command=...`
(`kubectl attach`: `pods/NAME/attach`, the same channels without a command)
as a WebSocket offering the sub-protocols `v5.channel.k8s.io` and
`v4.channel.k8s.io`. Every binary message starts with a channel byte: 0 stdin,
1 stdout, 2 stderr, 3 error, 4 resize (JSON `{"Width": w, "Height": h}`). The
error channel carries one Status object when the command ends: Success, or
Failure with reason NonZeroExitCode and the code as an `ExitCode` cause (kubectl
exits with it). v5 adds one control message, 255 followed by a channel number: the
client closed that stream (for stdin: the command sees its end). v4 cannot say
that, so stdin stays open until the connection closes.

SPDY (kubectl's older transport, POST with `Upgrade: SPDY/3.1`) carries the same
streams as SPDY streams instead of channel bytes: master/api/kube/exec_spdy.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
# In the order the server prefers them.
PROTOCOLS = (V5, V4)

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255


def choose_protocol(offered: str) -> str | None:
    """The sub-protocol to answer for a `Sec-WebSocket-Protocol` header, or None."""
    names = {p.strip() for p in offered.split(",") if p.strip()}
    return next((p for p in PROTOCOLS if p in names), None)


def frame(channel: int, data: bytes) -> bytes:
    return bytes([channel]) + data


@dataclass(frozen=True, slots=True)
class Stdin:
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseStdin:
    pass


@dataclass(frozen=True, slots=True)
class Resize:
    width: int
    height: int


ClientFrame = Stdin | CloseStdin | Resize


def parse_client_frame(message: bytes, protocol: str) -> ClientFrame | None:
    """What a client's binary message asks for; None for what carries nothing to do
    (an empty message, or a channel a client has no business writing to)."""
    if not message:
        return None
    channel, body = message[0], message[1:]
    if channel == STDIN:
        return Stdin(body) if body else None
    if channel == RESIZE:
        try:
            size = json.loads(body)
            width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
        except (ValueError, TypeError, AttributeError):
            return None
        return Resize(width, height) if width > 0 and height > 0 else None
    if channel == CLOSE and protocol == V5 and body[:1] == bytes([STDIN]):
        return CloseStdin()
    return None


def exit_status(code: int, error: str, command: Sequence[str]) -> dict[str, Any]:
    """The Status sent on the error channel when the command ends (as the kubelet words it)."""
    if error:
        return {
            "metadata": {}, "status": "Failure", "message": error, "reason": "InternalError",
            "code": 500,
        }  # fmt: skip
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    if code < 0:
        return {
            "metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
            "message": f"the exit code of {list(command)} is unknown (the engine lost track)",
        }  # fmt: skip
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command "
            f"{list(command)}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


@dataclass(frozen=True, slots=True)
class ExecParams:
    command: list[str]
    container: str = ""
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


def exec_params(query: Mapping[str, str], commands: list[str], attach: bool = False) -> ExecParams:
    """pods/NAME/exec's (or, `attach`, pods/NAME/attach's: no command) query (the `command`
    values given apart: they repeat); ValueError names what is wrong."""

    def flag(key: str, default: bool) -> bool:
        text = query.get(key, "")
        return default if not text else text.lower() in ("1", "true")

    if not commands and not attach:
        raise ValueError("you must specify at least one command for the container")
    params = ExecParams(
        command=commands,
        container=query.get("container", ""),
        stdin=flag("stdin", False),
        stdout=flag("stdout", False),
        stderr=flag("stderr", False),
        tty=flag("tty", False),
    )
    if not (params.stdin or params.stdout or params.stderr):
        raise ValueError("you must specify at least one of stdin, stdout, stderr")
    return params
