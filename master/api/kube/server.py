"""The master's HTTPS server for the Kubernetes API (aiohttp), with client-certificate auth.

Why aiohttp: a mature, maintained asyncio HTTP/1.1 server that runs on the
master's own event loop beside grpc.aio (no second server process, no ASGI
layer), streams chunked responses (watch) and has WebSockets for later
streaming verbs, and takes a plain `ssl.SSLContext`, so TLS uses the cluster
CA and the master's server certificate exactly as the gRPC port does.

Authentication is the gRPC port's (master/api/auth.py, `peer_from_certificate`):
a client certificate signed by the cluster CA with O=pinnace:admins is an admin
and may do everything; a node certificate may do nothing here (403); no or a
foreign certificate is 401. The handshake asks for a certificate but does not
require one, so a client without one gets a Status object it can print rather
than a TLS alert. `--insecure` masters serve plain HTTP on loopback only,
without authorisation, like their gRPC port.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from kernel.clock import Clock
from master.api.auth import Peer, peer_from_certificate
from master.api.kube import errors
from master.api.kube.api import KubeApi, status_errors
from master.api.kube.forward import KubeForwarder
from master.api.kube.metered import request_metrics
from master.api.logs import LogRelay
from master.app.apply import ServiceAdmission
from master.app.delete import NodeLifecycle
from master.app.usage import UsageTable
from master.controllers.nodes import LeaseTable
from master.pki.bootstrap import MasterPki, listen_host
from master.state import ClusterState

log = logging.getLogger("pinnace.master")

MAX_BODY_BYTES = 3 * 1024 * 1024
_MAX_CACHE = 1024


def _ssl_context(pki: MasterPki) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads certificates from files only: a private temporary directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="pinnace-api-") as tmp:
        chain, key, roots = Path(tmp, "chain.pem"), Path(tmp, "key.pem"), Path(tmp, "ca.pem")
        chain.write_bytes(pki.server_chain_pem)
        key.touch(mode=0o600)
        key.write_bytes(pki.server_key_pem)
        roots.write_bytes(pki.ca.pem)
        ctx.load_cert_chain(chain, key)
        ctx.load_verify_locations(cafile=str(roots))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class Authenticator:
    def __init__(self, pki: MasterPki | None) -> None:
        self._pki = pki
        self._cache: dict[bytes, Peer] = {}

    def peer(self, request: web.Request) -> Peer | None:
        if self._pki is None:
            return Peer("admin", "insecure")
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return None
        peer = self._cache.get(der)
        if peer is None:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            pem = ssl.DER_cert_to_PEM_cert(der).encode()
            peer = self._cache[der] = peer_from_certificate(pem, self._pki.ca)
        return peer

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        peer = self.peer(request)
        if peer is None or peer.role == "anonymous":
            e = errors.KubeError(
                401, "Unauthorized",
                "Unauthorized: present an admin client certificate of this cluster "
                "(`pinnace kubeconfig` prints a kubeconfig with one)",
            )  # fmt: skip
            return web.json_response(e.status(), status=401)
        if peer.role != "admin":
            e = errors.KubeError(
                403, "Forbidden",
                f'node "{peer.name}" cannot use the Kubernetes API: node certificates may '
                f"only run their agent; use an admin certificate",
            )  # fmt: skip
            return web.json_response(e.status(), status=403)
        response: web.StreamResponse = await handler(request)
        return response


@dataclass(slots=True)
class KubeApiServer:
    runner: web.AppRunner
    api: KubeApi
    port: int
    url: str
    forwarder: KubeForwarder | None = None

    async def stop(self) -> None:
        self.api.hub.close()
        await self.runner.cleanup()
        if self.forwarder is not None:
            await self.forwarder.close()


async def start_kube_api(
    listen: str,
    pki: MasterPki | None,
    state: ClusterState,
    lifecycle: NodeLifecycle,
    clock: Clock,
    logs: LogRelay | None = None,
    admit_services: ServiceAdmission | None = None,
    node_leases: LeaseTable | None = None,
    lease_seconds: float = 40.0,
    usage: UsageTable | None = None,
) -> KubeApiServer:
    """Bind `listen` (port 0 picks one) and serve; returns the bound port and URL."""
    host = listen_host(listen)
    port_text = listen.rsplit(":", 1)[-1] if ":" in listen else "6443"
    api = KubeApi(
        state, lifecycle, clock, "", logs, admit_services, node_leases, lease_seconds, usage
    )
    auth = Authenticator(pki)
    # After authentication: a follower passes writes to the leader (several masters).
    forwarder = KubeForwarder(state, pki)
    app = web.Application(
        middlewares=[request_metrics, auth.middleware, forwarder.middleware, status_errors],
        client_max_size=MAX_BODY_BYTES,
    )
    app.add_routes(api.routes())
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner,
        host or None,
        int(port_text),
        ssl_context=_ssl_context(pki) if pki is not None else None,
        shutdown_timeout=1.0,
    )
    await site.start()
    server = site._server  # the bound sockets: the only way to learn a port-0 bind
    sockets = getattr(server, "sockets", None) or []
    port = int(sockets[0].getsockname()[1]) if sockets else int(port_text)
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::", "*") else host
    scheme = "https" if pki is not None else "http"
    url = f"{scheme}://[{shown}]:{port}" if ":" in shown else f"{scheme}://{shown}:{port}"
    api.server_address = url.split("://", 1)[1]
    return KubeApiServer(runner, api, port, url, forwarder)
