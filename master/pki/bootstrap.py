"""The master's TLS material on disk: created on first start, reused after.

Layout under `<data-dir>/`:

    pki/ca.crt, pki/ca.key          the cluster CA (key 0600); created once, kept
    pki/server.crt, pki/server.key  the master's serving certificate, re-issued at
                                    every start so its SANs follow --listen/--tls-san
    pki/admin.crt, pki/admin.key    the admin client identity; re-issued when it
                                    has less than 30 days left
    pinnace.conf                    the admin's client config (0600), rewritten at
                                    every start with the address actually bound

The server certificate names: the --listen host (or, for a wildcard listen, every
address of this machine's interfaces), 127.0.0.1, ::1, localhost, the hostname,
and every --tls-san (e.g. the compose service name `master`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from kernel.files import write_atomic
from master.pki.anonymous import anonymous_ca_pem
from master.pki.ca import (
    ADMIN_CN,
    ADMIN_LIFETIME,
    ADMIN_ORG,
    CertificateAuthority,
    cert_pem,
    key_pem,
    load_key,
    new_key,
)
from master.pki.clientconfig import CONFIG_NAME, ClientConfig, is_loopback, render_client_config
from master.pki.identity import ClusterIdentity

log = logging.getLogger(__name__)

RENEW_ADMIN_BEFORE = dt.timedelta(days=30)
_WILDCARDS = ("", "0.0.0.0", "::", "[::]", "*")


@dataclass(frozen=True, slots=True)
class MasterPki:
    ca: CertificateAuthority
    server_key_pem: bytes
    # The server certificate followed by the CA: a joining agent reads the CA from it.
    server_chain_pem: bytes
    # Roots a client certificate may chain to: the cluster CA and the anonymous CA.
    client_roots_pem: bytes
    admin_key_pem: bytes
    admin_cert_pem: bytes
    directory: Path


def listen_host(listen: str) -> str:
    host = listen.rsplit(":", 1)[0] if ":" in listen else listen
    return host.strip("[]")


def server_names(listen: str, extra: list[str]) -> list[str]:
    host = listen_host(listen)
    names = ["127.0.0.1", "::1", "localhost"]
    if host in _WILDCARDS:
        names += _interface_addresses()
        names.append(socket.gethostname())
    else:
        names.append(host)
        if not is_loopback(host):
            names.append(socket.gethostname())
    return list(dict.fromkeys([*names, *extra]))


def _interface_addresses() -> list[str]:
    import psutil

    found = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                found.append(addr.address.split("%", 1)[0])
    return found


def ensure_pki(
    data_dir: Path, sans: list[str], now: dt.datetime, shared: ClusterIdentity | None = None
) -> MasterPki:
    """Load (or create, on first start) the CA, and issue this start's certificates.

    With `shared` (masters on etcd: master/pki/shared.py) the CA and the admin identity
    are the cluster's, from the store; only ca.crt is written here (for tools), never
    the CA's key, and the server certificate is this master's own (its own SANs)."""
    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True, mode=0o700)
    if shared is not None:
        return _shared_pki(pki, shared, sans, now)
    ca_crt, ca_key = pki / "ca.crt", pki / "ca.key"
    if ca_crt.exists() and ca_key.exists():
        ca = CertificateAuthority(
            x509.load_pem_x509_certificate(ca_crt.read_bytes()), load_key(ca_key.read_bytes())
        )
    else:
        ca = CertificateAuthority.create(now)
        write_atomic(ca_key, key_pem(ca.key))
        write_atomic(ca_crt, ca.pem, 0o644)
        log.info("created the cluster CA in %s", pki)

    server_key = new_key()
    server_cert = ca.issue_server(server_key, sans, now)
    write_atomic(pki / "server.key", key_pem(server_key))
    write_atomic(pki / "server.crt", cert_pem(server_cert), 0o644)

    admin_crt, admin_key = pki / "admin.crt", pki / "admin.key"
    admin = _reusable(admin_crt, admin_key, ca, now)
    if admin is None:
        key = new_key()
        cert = ca.issue_client(key.public_key(), ADMIN_CN, ADMIN_ORG, now, ADMIN_LIFETIME)
        admin = (key_pem(key), cert_pem(cert))
        write_atomic(admin_key, admin[0])
        write_atomic(admin_crt, admin[1], 0o644)
    return MasterPki(
        ca=ca,
        server_key_pem=key_pem(server_key),
        server_chain_pem=cert_pem(server_cert) + ca.pem,
        client_roots_pem=ca.pem + anonymous_ca_pem(),
        admin_key_pem=admin[0],
        admin_cert_pem=admin[1],
        directory=pki,
    )


def _shared_pki(pki: Path, shared: ClusterIdentity, sans: list[str], now: dt.datetime) -> MasterPki:
    ca = CertificateAuthority(
        x509.load_pem_x509_certificate(shared.ca_cert_pem), load_key(shared.ca_key_pem)
    )
    write_atomic(pki / "ca.crt", ca.pem, 0o644)
    server_key = new_key()
    server_cert = ca.issue_server(server_key, sans, now)
    write_atomic(pki / "server.key", key_pem(server_key))
    write_atomic(pki / "server.crt", cert_pem(server_cert), 0o644)
    return MasterPki(
        ca=ca,
        server_key_pem=key_pem(server_key),
        server_chain_pem=cert_pem(server_cert) + ca.pem,
        client_roots_pem=ca.pem + anonymous_ca_pem(),
        admin_key_pem=shared.admin_key_pem,
        admin_cert_pem=shared.admin_cert_pem,
        directory=pki,
    )


def _reusable(
    crt: Path, key: Path, ca: CertificateAuthority, now: dt.datetime
) -> tuple[bytes, bytes] | None:
    if not crt.exists() or not key.exists():
        return None
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        key_data = key.read_bytes()
        load_key(key_data)
    except ValueError:
        return None
    if not ca.issued(cert) or cert.not_valid_after_utc - now < RENEW_ADMIN_BEFORE:
        return None
    return key_data, crt.read_bytes()


def write_admin_config(pki: MasterPki, data_dir: Path, server: str, api_server: str = "") -> Path:
    path = data_dir / CONFIG_NAME
    config = ClientConfig(server, pki.ca.pem, pki.admin_cert_pem, pki.admin_key_pem, api_server)
    write_atomic(path, render_client_config(config).encode())
    return path


def advertised_host(listen: str, advertise: str, interfaces: list[str] | None = None) -> str:
    """The host other masters, agents and clients are told to reach this master at: the
    `--advertise-address`, else the listen host, else (a wildcard listen, which nobody can
    dial) the first interface address that is not loopback, else loopback. `interfaces`
    defaults to this machine's."""
    if advertise:
        return advertise.strip("[]")
    host = listen_host(listen)
    if host not in _WILDCARDS:
        return host
    found = _interface_addresses() if interfaces is None else interfaces
    routable = [a for a in found if not is_loopback(a) and not _link_local(a)]
    ipv4 = [a for a in routable if ":" not in a]
    return (ipv4 or routable or ["127.0.0.1"])[0]


def _link_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_link_local
    except ValueError:
        return False


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def config_address(listen: str, port: int) -> str:
    """The address the admin config points at: the listen host, or loopback for a wildcard."""
    host = listen_host(listen)
    if host in _WILDCARDS:
        host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
