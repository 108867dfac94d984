"""Credentials of another cluster, for tests that show a master refusing them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kernel.files import write_atomic
from master.pki.ca import ADMIN_ORG, CertificateAuthority, cert_pem, key_pem, new_key
from master.pki.clientconfig import ClientConfig, render_client_config


def foreign_admin_config(server: str) -> ClientConfig:
    """An admin's client config for `server` from a CA of its own: the master's certificate
    does not verify against it, nor does the master take its client certificate."""
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.create(now)
    key = new_key()
    cert = ca.issue_client(key.public_key(), "pinnace-admin", ADMIN_ORG, now, dt.timedelta(1))
    return ClientConfig(server, ca.pem, cert_pem(cert), key_pem(key))


def write_client_config(path: Path, config: ClientConfig) -> Path:
    write_atomic(path, render_client_config(config).encode())
    return path
