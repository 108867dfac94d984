"""The shared cluster identity at the edges: the cluster secret's file and the store.

`cluster_secret` finds the secret a master seals and opens the identity with:
  1. `--cluster-secret-file FILE` (every master of a cluster is given the same);
  2. else `<data-dir>/cluster-secret`, if an earlier start left one;
  3. else, when the store holds no identity yet (this is the cluster's first
     master), a new random secret written there (0600) — the operator copies it
     to the other masters, as k3s's servers copy `server/token`;
  4. else one sentence: this cluster's identity needs its secret.

`load_or_create` reads the sealed identity from the store's metadata, or, on the
cluster's first start, makes one and stores it with a create-only write (the
store compares the key's revision: two first masters racing both end up with
the one that landed). A first master that already has a CA, admin credentials
or a Secrets key in its data dir (it ran before on its own) brings them along,
so agents and Secrets it already had keep working.

Migrating a prefix written before masters shared one identity: its agents trust
the CA of the master they joined through. So the identity must start from that
master's CA, and no other CA may be dropped silently: a master with no CA of its
own refuses to make the identity of a prefix that already holds a cluster (start
the master that ran it first), and a master whose data dir holds a CA key of its
own that is not the cluster's refuses to start (its agents would be cut off): the
operator moves DATA_DIR/pki aside and re-joins those agents. Bridging two CAs
(cross-signing, so agents of both keep working) is not done.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
from pathlib import Path

from cryptography import x509

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
from master.pki.identity import (
    ClusterIdentity,
    IdentityError,
    check_secret,
    open_identity,
    seal_identity,
)
from master.store.port import Store, StoreError
from master.store.sealing import KEY_FILE

log = logging.getLogger(__name__)

IDENTITY_META = "cluster.identity"
# Written with the first object: present on a store that already holds a cluster.
RESOURCE_VERSION_META = "resource_version"
SECRET_FILE = "cluster-secret"
MAX_SECRET_BYTES = 4096


def cluster_secret(flag: Path | None, data_dir: Path, store: Store) -> str:
    """The cluster secret (see the module docstring for where it comes from)."""
    if flag is not None:
        return _read_secret(flag, "--cluster-secret-file")
    local = data_dir / SECRET_FILE
    if local.exists():
        return _read_secret(local, str(local))
    if store.meta_get(IDENTITY_META) is not None:
        raise StoreError(
            "this cluster's identity (CA, admin credentials, Secrets key) in the store is "
            "sealed with its cluster secret: start this master with --cluster-secret-file FILE "
            f"holding the secret the other masters use (the first master's DATA_DIR/{SECRET_FILE})"
        )
    secret = base64.b64encode(os.urandom(32)).decode()
    fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secret + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info(
        "made the cluster secret %s: start every other master of this cluster with "
        "--cluster-secret-file pointing at a copy of it",
        local,
    )
    return secret


def _read_secret(path: Path, source: str) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SECRET_BYTES + 1)
    except OSError as e:
        raise StoreError(f"{source}: cannot read {path}: {e.strerror or e}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise StoreError(f"{source}: {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        return check_secret(data.decode(), f"{source} {path}")
    except (IdentityError, UnicodeDecodeError) as e:
        raise StoreError(str(e) if isinstance(e, IdentityError) else f"{path}: not text") from None


def load_or_create(store: Store, secret: str, data_dir: Path, now: dt.datetime) -> ClusterIdentity:
    """The cluster's identity from the store, made and stored first if there is none."""
    envelope = store.meta_get(IDENTITY_META)
    if envelope is None:
        if (
            store.meta_get(RESOURCE_VERSION_META) is not None
            and _local_ca(data_dir / "pki") is None
        ):
            raise StoreError(
                "the store already holds a cluster from before its masters shared one identity, "
                f"and {data_dir / 'pki'} has no CA: start the master that ran this cluster "
                "first (its CA is the one the agents trust), then this one"
            )
        identity = initial_identity(data_dir, now)
        try:
            store.meta_set(IDENTITY_META, seal_identity(identity, secret))
        except StoreError:
            envelope = store.meta_get(IDENTITY_META)  # another first master was quicker
            if envelope is None:
                raise
        else:
            log.info("stored this cluster's identity (sealed with the cluster secret)")
            return identity
    try:
        identity = open_identity(envelope, secret)
    except IdentityError as e:
        raise StoreError(
            f"{e}: start this master with the --cluster-secret-file the cluster's other masters use"
        ) from None
    own = _local_ca(data_dir / "pki")
    if own is not None and own.pem != identity.ca_cert_pem:
        raise StoreError(
            f"{data_dir / 'pki'} holds a CA of this master's own that is not the cluster's "
            "(from before its masters shared one identity): agents that joined through this "
            f"master trust it and would be cut off; move {data_dir / 'pki'} aside to take the "
            "cluster's CA and re-join those agents with a token (`pinnace token create`)"
        )
    return identity


def initial_identity(data_dir: Path, now: dt.datetime) -> ClusterIdentity:
    """A new identity, keeping what this data dir already has (CA, admin, Secrets key)."""
    pki = data_dir / "pki"
    ca = _local_ca(pki)
    if ca is None:
        ca = CertificateAuthority.create(now)
    else:
        log.info("the cluster identity keeps the CA already in %s", pki)
    admin = _local_admin(pki, ca)
    if admin is None:
        key = new_key()
        cert = ca.issue_client(key.public_key(), ADMIN_CN, ADMIN_ORG, now, ADMIN_LIFETIME)
        admin = (cert_pem(cert), key_pem(key))
    sealing = data_dir / KEY_FILE
    secrets_key = sealing.read_bytes() if sealing.exists() else os.urandom(32)
    if len(secrets_key) != 32:
        raise StoreError(f"{sealing}: not a pinnace secrets key (expected 32 bytes)")
    return ClusterIdentity(ca.pem, key_pem(ca.key), admin[0], admin[1], secrets_key)


def _local_ca(pki: Path) -> CertificateAuthority | None:
    crt, key = pki / "ca.crt", pki / "ca.key"
    if not (crt.exists() and key.exists()):
        return None
    return CertificateAuthority(
        x509.load_pem_x509_certificate(crt.read_bytes()), load_key(key.read_bytes())
    )


def _local_admin(pki: Path, ca: CertificateAuthority) -> tuple[bytes, bytes] | None:
    crt, key = pki / "admin.crt", pki / "admin.key"
    if not (crt.exists() and key.exists()):
        return None
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        load_key(key.read_bytes())
    except ValueError:
        return None
    return (crt.read_bytes(), key.read_bytes()) if ca.issued(cert) else None


def identity_ca(identity: ClusterIdentity) -> CertificateAuthority:
    return CertificateAuthority(
        x509.load_pem_x509_certificate(identity.ca_cert_pem), load_key(identity.ca_key_pem)
    )
