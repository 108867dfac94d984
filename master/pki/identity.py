"""The cluster identity several masters share, sealed under the cluster secret (pure).

Masters on one etcd are one cluster only if they share what makes a cluster:
the CA (so an agent's or an admin's certificate is good at every master, and
every master's serving certificate chains to the CA agents pinned), the admin
identity (one pinnace.conf works everywhere) and the key that seals Secrets
(master/store/sealing.py; a new leader must open what the old one sealed). Join
tokens and node bindings are store documents already (registry.py).

So the first master on an etcd prefix makes a `ClusterIdentity` and stores it,
encrypted, as one metadata value; every later master loads it. The
key-encryption key comes from the **cluster secret**, a string every master of
the cluster is given (`--cluster-secret-file`, as k3s servers share `--token`):
scrypt(secret, salt) -> AES-256-GCM. The envelope is

    pinnace-identity:v1:<base64 salt>:<base64 nonce | ciphertext>

with the envelope's own prefix as associated data. etcd (its members' disks,
its backups, anyone with read access to the prefix) never sees the CA key, the
admin key or the sealing key in clear; a master started with another secret
cannot open the envelope and refuses to start with one sentence.

Everything here is computation on bytes: the store round trip and the files
live in master/pki/shared.py.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

_PREFIX = "pinnace-identity:v1:"
# scrypt's interactive-login cost (~50 ms): once per master start, costly to guess offline.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
MIN_SECRET_LENGTH = 16


class IdentityError(ValueError):
    """The sealed identity cannot be opened (wrong secret, damaged); one sentence."""


@dataclass(frozen=True, slots=True)
class ClusterIdentity:
    ca_cert_pem: bytes
    ca_key_pem: bytes
    admin_cert_pem: bytes
    admin_key_pem: bytes
    # The 32-byte AES key that seals Secrets at rest.
    secrets_key: bytes

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "caCert": self.ca_cert_pem.decode(),
                "caKey": self.ca_key_pem.decode(),
                "adminCert": self.admin_cert_pem.decode(),
                "adminKey": self.admin_key_pem.decode(),
                "secretsKey": base64.b64encode(self.secrets_key).decode(),
            },
            separators=(",", ":"),
        ).encode()

    @staticmethod
    def from_json(data: bytes) -> ClusterIdentity:
        doc = json.loads(data)
        return ClusterIdentity(
            ca_cert_pem=str(doc["caCert"]).encode(),
            ca_key_pem=str(doc["caKey"]).encode(),
            admin_cert_pem=str(doc["adminCert"]).encode(),
            admin_key_pem=str(doc["adminKey"]).encode(),
            secrets_key=base64.b64decode(doc["secretsKey"]),
        )


def check_secret(secret: str, source: str) -> str:
    """The secret as used (surrounding whitespace dropped), or IdentityError naming `source`."""
    secret = secret.strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise IdentityError(
            f"{source}: the cluster secret must be at least {MIN_SECRET_LENGTH} characters "
            f"(got {len(secret)}); `head -c 32 /dev/urandom | base64` makes a good one"
        )
    return secret


def _kek(secret: str, salt: bytes) -> AESGCM:
    kdf = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return AESGCM(kdf.derive(secret.encode()))


def seal_identity(identity: ClusterIdentity, secret: str) -> str:
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = _kek(secret, salt).encrypt(nonce, identity.to_json(), _PREFIX.encode())
    return f"{_PREFIX}{base64.b64encode(salt).decode()}:{base64.b64encode(nonce + sealed).decode()}"


def open_identity(envelope: str, secret: str) -> ClusterIdentity:
    if not envelope.startswith(_PREFIX):
        raise IdentityError("the stored cluster identity is in an unknown format")
    salt_text, _, body = envelope[len(_PREFIX) :].partition(":")
    try:
        salt, raw = base64.b64decode(salt_text, validate=True), base64.b64decode(body)
    except ValueError:
        raise IdentityError("the stored cluster identity is damaged (not base64)") from None
    try:
        plain = _kek(secret, salt).decrypt(raw[:12], raw[12:], _PREFIX.encode())
    except InvalidTag:
        raise IdentityError(
            "the cluster secret does not open this cluster's identity (another secret, or "
            "the stored identity is damaged)"
        ) from None
    try:
        return ClusterIdentity.from_json(plain)
    except (ValueError, KeyError, TypeError):
        raise IdentityError("the stored cluster identity is damaged (not its JSON)") from None
