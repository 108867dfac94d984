"""pods/NAME/exec: a WebSocket (master/api/kube/channels.py) bridged to an ExecChannel;
a plain SPDY upgrade goes to master/api/kube/exec_spdy.py instead.

The refusals a client can act on (no such pod or container, a pod not on a node,
a completed pod, no WebSocket offered) are answered before the upgrade as Status
objects; once upgraded, whatever ends the command (its exit, the agent's error,
the node's session ending) is one Status on the error channel, then the close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, web

from master.api.exec import ExecRefused, ExecRelay, ExecUnavailable, Exited, locate_exec
from master.api.kube import errors, exec_spdy, upgrade
from master.api.kube.channels import (
    ERROR,
    STDERR,
    STDOUT,
    CloseStdin,
    Resize,
    Stdin,
    choose_protocol,
    exec_params,
    exit_status,
    frame,
    parse_client_frame,
)
from master.model import DEFAULT_NAMESPACE
from master.state import ClusterState


async def serve_exec(
    request: web.Request,
    state: ClusterState,
    relay: ExecRelay | None,
    name: str,
    namespace: str = DEFAULT_NAMESPACE,
    attach: bool = False,
) -> web.StreamResponse:
    """An exec, or with `attach` the container's main process (Docker's attach): the
    same channels; an attach ends with Success when the stream ends (as the kubelet's)."""
    verb = "attach" if attach else "exec"
    try:
        params = exec_params(request.query, request.query.getall("command", []), attach)
        node, container = locate_exec(state, name, params.container, namespace)
    except ValueError as e:
        raise errors.bad_request(str(e)) from None
    except ExecRefused as e:
        if e.code == "not_found":
            raise errors.not_found("pods", "", name) from None
        raise errors.bad_request(e.message) from None
    if relay is None:
        raise errors.KubeError(503, "ServiceUnavailable", "this master relays no execs")
    protocol = choose_protocol(request.headers.get("Sec-WebSocket-Protocol", ""))
    spdy_protocol = upgrade.choose(
        request.headers.getall("X-Stream-Protocol-Version", []), exec_spdy.PROTOCOLS
    )
    spdy_wanted = upgrade.wants_spdy(request) and spdy_protocol is not None
    if not spdy_wanted and (
        request.headers.get("Upgrade", "").lower() != "websocket" or protocol is None
    ):
        raise errors.bad_request(
            f"pinnace serves {verb} over WebSocket with the sub-protocol v5.channel.k8s.io or "
            "v4.channel.k8s.io (kubectl 1.30 and later), and over a SPDY/3.1 upgrade with "
            "X-Stream-Protocol-Version v4.channel.k8s.io"
        )
    try:
        channel = relay.open(
            node, name, container, params.command, params.stdin, params.tty, namespace=namespace,
            attach=attach,
        )  # fmt: skip
    except ExecUnavailable as e:
        raise errors.bad_request(str(e)) from None
    if spdy_wanted and spdy_protocol is not None:
        try:
            conn = await upgrade.upgrade(request, spdy_protocol)
            with contextlib.suppress(ConnectionResetError):
                await exec_spdy.ExecSpdySession(conn, channel, params, attach).run()
            return conn.response
        finally:
            channel.close()
    if protocol is None:  # (the refusal above already answered this)
        raise errors.bad_request(f"pinnace serves {verb} over WebSocket or SPDY/3.1")
    ws = web.WebSocketResponse(protocols=(protocol,), autoping=True, max_msg_size=1 << 20)
    try:
        await ws.prepare(request)

        async def read_client() -> None:
            try:
                await pass_input()
            finally:
                channel.client_gone()

        async def pass_input() -> None:
            async for message in ws:
                if message.type != WSMsgType.BINARY:
                    continue
                wanted = parse_client_frame(message.data, protocol)
                if isinstance(wanted, Stdin) and params.stdin:
                    await channel.stdin(wanted.data)
                elif isinstance(wanted, CloseStdin):
                    channel.close_stdin()
                elif isinstance(wanted, Resize):
                    channel.resize(wanted.width, wanted.height)

        reader = asyncio.create_task(read_client())
        try:
            while True:
                event = await channel.next()
                if isinstance(event, Exited):
                    code = 0 if attach and not event.error else event.code
                    status = exit_status(code, event.error, params.command)
                    await ws.send_bytes(frame(ERROR, json.dumps(status).encode()))
                    break
                if event.stream == STDERR and not params.stderr:
                    continue
                if event.stream == STDOUT and not params.stdout:
                    continue
                await ws.send_bytes(frame(event.stream, event.data))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        channel.close()
        with contextlib.suppress(Exception):
            await ws.close()
    return ws
