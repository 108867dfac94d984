"""Writes on any master's Kubernetes API: a follower passes them to the leader's.

The gRPC side does the same (master/api/forward.py). A write request (POST,
PUT, PATCH, DELETE) that reaches a follower after authentication is sent as it
came — method, path and query, body, Content-Type — to the leader's API URL
(which the leader publishes in its masters entry), as the cluster's admin,
and the leader's answer (status, body, Content-Type) is returned unchanged,
so kubectl and client libraries see one API whichever master they reached.

A pod's log and exec go through the agent's session, which only the leader
holds (and the agents' usage, metrics.k8s.io, is reported there): they go to the
leader too, the log streamed back as it comes
(`follow=true`), an exec's WebSocket relayed frame by frame both ways.

`forward_url` decides (pure): never another read, never a connection upgrade
(exec/attach streams stay where they are), never a request that was itself
forwarded (header X-Pinnace-Forwarded), and only while this master may not
write and knows the leader's URL. A leader that cannot be reached is a 503
Status naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from master.api.kube import errors
from master.pki.bootstrap import MasterPki
from master.state import ClusterState

FORWARDED_HEADER = "X-Pinnace-Forwarded"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TIMEOUT_S = 30.0
_PASSED_ON = ("Content-Type", "Accept")
_RETURNED = ("Content-Type", "Warning")
_MAX_FRAME = 1 << 20


def forward_url(
    method: str,
    path_qs: str,
    writable: bool,
    leader_api: str,
    forwarded: bool,
    upgrade: bool,
    session_bound: bool = False,
) -> str:
    """The leader's URL for this request when it goes there, else "" (answer it here).
    `session_bound`: only the leader can serve it, holding the agents' sessions (a pod's
    log, an exec, WebSocket upgrade included)."""
    if writable or not leader_api or forwarded:
        return ""
    if not session_bound and (upgrade or method not in WRITES):
        return ""
    return leader_api.rstrip("/") + path_qs


def _pod_sub(path: str) -> str:
    parts = path.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 3 and parts[-3] == "pods" else ""


def is_log(path: str) -> bool:
    """/api/v1/namespaces/NS/pods/NAME/log: served from the agent's session."""
    return _pod_sub(path) == "log"


def is_session_bound(path: str) -> bool:
    """A pod's log, exec, attach or port-forward: served through the agent's session,
    which the leader holds; and metrics.k8s.io, from the usage the agents report there."""
    return _pod_sub(path) in ("log", "exec", "attach", "portforward") or path.startswith(
        "/apis/metrics.k8s.io/"
    )


def _client_ssl(pki: MasterPki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=pki.ca.pem.decode())
    # ssl loads a client certificate from files only: a private temporary directory.
    with tempfile.TemporaryDirectory(prefix="pinnace-forward-") as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_bytes(pki.admin_cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(pki.admin_key_pem)
        ctx.load_cert_chain(cert, key)
    return ctx


def _unreachable(url: str, e: BaseException) -> web.Response:
    leader = url.split("/", 3)[2] if "://" in url else url
    e503 = errors.KubeError(
        503,
        "ServiceUnavailable",
        f"nothing was changed: this master is a follower and the leader's API at "
        f"{leader} did not take the request ({type(e).__name__}: {e}); retry",
    )
    return web.json_response(e503.status(), status=503)


async def _pump(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Frames both ways until either side closes."""

    async def up() -> None:
        async for message in client:
            if message.type == aiohttp.WSMsgType.BINARY:
                await upstream.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.TEXT:
                await upstream.send_str(message.data)

    async def down() -> None:
        async for message in upstream:
            if message.type == aiohttp.WSMsgType.BINARY:
                await client.send_bytes(message.data)
            elif message.type == aiohttp.WSMsgType.TEXT:
                await client.send_str(message.data)

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class KubeForwarder:
    def __init__(self, state: ClusterState, pki: MasterPki | None) -> None:
        self._state = state
        self._pki = pki
        self._session: aiohttp.ClientSession | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method in WRITES and FORWARDED_HEADER not in request.headers:
            await self._state.wait_for_a_writer()
        url = forward_url(
            request.method,
            request.path_qs,
            self._state.writable,
            self._state.leader_api_url(),
            FORWARDED_HEADER in request.headers,
            "Upgrade" in request.headers,
            is_session_bound(request.path),
        )
        if not url:
            response: web.StreamResponse = await handler(request)
            return response
        return await self._forward(request, url)

    async def _forward(self, request: web.Request, url: str) -> web.StreamResponse:
        session = self._client()
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._forward_websocket(request, url, session)
        return await self._forward_http(request, url, session)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            tls: ssl.SSLContext | bool = _client_ssl(self._pki) if self._pki is not None else False
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=tls),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            )
        return self._session

    async def _forward_http(
        self, request: web.Request, url: str, session: aiohttp.ClientSession
    ) -> web.StreamResponse:
        headers = {k: request.headers[k] for k in _PASSED_ON if k in request.headers}
        headers[FORWARDED_HEADER] = "1"
        body = await request.read()
        streamed = is_log(request.path)
        # A followed log may run for hours: only connecting is bounded.
        timeout = (
            aiohttp.ClientTimeout(total=None, sock_connect=10)
            if streamed
            else aiohttp.ClientTimeout(total=TIMEOUT_S)
        )
        try:
            async with session.request(
                request.method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=timeout,
            ) as reply:
                passed = {k: reply.headers[k] for k in _RETURNED if k in reply.headers}
                passed.setdefault("Content-Type", "application/json")
                if streamed and reply.status == 200:
                    out = web.StreamResponse(status=reply.status, headers=passed)
                    await out.prepare(request)
                    async for chunk in reply.content.iter_any():
                        await out.write(chunk)
                    await out.write_eof()
                    return out
                data = await reply.read()
                return web.Response(status=reply.status, body=data, headers=passed)
        except (TimeoutError, aiohttp.ClientError) as e:
            return _unreachable(url, e)

    async def _forward_websocket(
        self, request: web.Request, url: str, session: aiohttp.ClientSession
    ) -> web.StreamResponse:
        """An exec's WebSocket, relayed frame by frame to the same request at the leader."""
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        protocols = [p.strip() for p in offered.split(",") if p.strip()]
        try:
            upstream = await session.ws_connect(
                url,
                protocols=protocols,
                headers={FORWARDED_HEADER: "1"},
                max_msg_size=_MAX_FRAME,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as e:
            # The leader refused it (a Status, e.g. no such pod): say so in one sentence.
            refusal = errors.KubeError(e.status, "BadRequest", f"the leader refused: {e.message}")
            return web.json_response(refusal.status(), status=e.status)
        except (TimeoutError, aiohttp.ClientError) as e:
            return _unreachable(url, e)
        chosen = (upstream.protocol,) if upstream.protocol else ()
        ws = web.WebSocketResponse(protocols=chosen, autoping=True, max_msg_size=_MAX_FRAME)
        try:
            await ws.prepare(request)
            await _pump(ws, upstream)
        finally:
            await upstream.close()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
