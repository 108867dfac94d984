"""Wires TLS and authorisation into the master's gRPC server (or refuses --insecure).

`MasterSecurity.start` loads or creates the PKI in the data dir
(master/pki/bootstrap.py), loads the token and node-binding registry from the
store, and builds the AuthInterceptor; the server then adds the interceptor,
the join and token servicers and a TLS port that requires a client certificate
chaining to the cluster CA or to the anonymous bootstrap CA. After the port is
bound, `write_config` writes the admin's pinnace.conf with the real address.

`--insecure` (plaintext, no authorisation) is for a laptop only: it is refused
unless the master listens on a loopback address.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from kernel.clock import Clock
from master.api.auth import AuthInterceptor
from master.api.join_servicer import JoinServicer, TokenServicer
from master.pki.admission import JoinAdmission
from master.pki.bootstrap import (
    MasterPki,
    config_address,
    ensure_pki,
    listen_host,
    server_names,
    write_admin_config,
)
from master.pki.ca import ca_hash
from master.pki.clientconfig import is_loopback
from master.pki.identity import ClusterIdentity
from master.pki.registry import SecurityRegistry
from master.state import ClusterState
from master.store.port import Store
from protos import security_pb2_grpc

log = logging.getLogger("pinnace.master")

DEFAULT_NODE_CERT_TTL = 90 * 86400.0


def check_insecure_listen(listen: str) -> None:
    host = listen_host(listen)
    if not is_loopback(host):
        raise SystemExit(
            f"pinnace master: --insecure is only allowed on a loopback address "
            f"(127.0.0.1, ::1, localhost), not {host or '*'}: without TLS anyone who can "
            f"reach the port controls every node"
        )


@dataclass(slots=True)
class MasterSecurity:
    pki: MasterPki
    registry: SecurityRegistry
    auth: AuthInterceptor
    data_dir: Path
    listen: str
    node_cert_ttl: float
    clock: Clock

    @classmethod
    async def start(
        cls,
        data_dir: Path,
        listen: str,
        tls_sans: list[str],
        node_cert_ttl: float,
        store: Store,
        state: ClusterState,
        clock: Clock,
        shared: ClusterIdentity | None = None,
    ) -> MasterSecurity:
        now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
        pki = ensure_pki(data_dir, server_names(listen, tls_sans), now, shared)
        registry = SecurityRegistry(store, clock)
        await registry.load()
        registry.follow(state)
        auth = AuthInterceptor(pki.ca, registry)
        return cls(pki, registry, auth, data_dir, listen, node_cert_ttl, clock)

    def add_servicers(
        self, server: grpc.aio.Server, state: ClusterState, joins: JoinAdmission | None = None
    ) -> None:
        security_pb2_grpc.add_JoinServiceServicer_to_server(
            JoinServicer(
                self.pki.ca,
                self.registry,
                state,
                self.auth,
                self.clock,
                self.node_cert_ttl,
                joins,
            ),
            server,
        )
        security_pb2_grpc.add_TokenServiceServicer_to_server(
            TokenServicer(ca_hash(self.pki.ca.cert), self.registry), server
        )

    def add_port(self, server: grpc.aio.Server, listen: str) -> int:
        credentials = grpc.ssl_server_credentials(
            [(self.pki.server_key_pem, self.pki.server_chain_pem)],
            root_certificates=self.pki.client_roots_pem,
            require_client_auth=True,
        )
        return int(server.add_secure_port(listen, credentials))

    def write_config(
        self, port: int, api_url: str = "", others: Sequence[str] = (), address: str = ""
    ) -> Path:
        """The admin's pinnace.conf; with several masters, `server` lists this one first
        (at its `address` when it advertises one), then the `others` running now (the CLI
        passes a call on along that list)."""
        address = address or config_address(self.listen, port)
        servers = ",".join(dict.fromkeys([address, *others]))
        path = write_admin_config(self.pki, self.data_dir, servers, api_url)
        log.info(
            "TLS on; CA hash %s; admin credentials for %s written to %s "
            "(the CLI on this machine finds them; elsewhere pass --config or set PINNACE_CONFIG)",
            ca_hash(self.pki.ca.cert),
            address,
            path,
        )
        return path
