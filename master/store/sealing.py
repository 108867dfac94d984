"""Secrets encrypted at rest: AES-GCM between the master's memory and any Store.

`SealingStore` wraps a Store. On `write`, each Secret is replaced by a copy whose
`data` is empty and whose `sealed` field holds the envelope of its values; on
`load_all` the envelope is opened again, so memory (and everything above it)
sees plain Secrets and the disk never does. Other kinds pass through.

The key is 32 random bytes in `<data dir>/secrets.key`, created on first start
with mode 0600 (as k3s's `--secrets-encryption` keeps its key beside the
datastore). The envelope is `aesgcm:v2:<key id>:<base64(nonce | ciphertext)>`;
the key id (the first 8 bytes of the key's SHA-256, in hex) says which key sealed
it, so a rotated key can be told from a damaged one. The Secret's kind, namespace
and name are the associated data ("Secret/<ns>/<name>"): a sealed value copied
onto another Secret, or into another namespace, does not open. Envelopes from
before namespaces (`aesgcm:v1:`, bound to "Secret/<name>") still open, and only
for a Secret of the "default" namespace, the only one there was; the master
re-seals them as v2 when it migrates the store's keys (master/store/migrate.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from master.model import DEFAULT_NAMESPACE, Secret, StoredObject
from master.store.port import ObjectKey, Store, StoreError

KEY_FILE = "secrets.key"
_PREFIX = "aesgcm:v2:"
_LEGACY_PREFIX = "aesgcm:v1:"


class SecretSealer:
    """Seals and opens Secret values with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise StoreError("the secrets key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16]

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> SecretSealer:
        """The data dir's key, made (0600) on first use."""
        path = data_dir / KEY_FILE
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes()
            if len(key) != 32:
                raise StoreError(f"{path}: not a pinnace secrets key (expected 32 bytes)") from None
            return cls(key)
        key = os.urandom(32)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        return cls(key)

    @staticmethod
    def _aad(secret: Secret) -> bytes:
        return f"Secret/{secret.meta.namespace}/{secret.meta.name}".encode()

    @staticmethod
    def _legacy_aad(secret: Secret) -> bytes:
        return f"Secret/{secret.meta.name}".encode()

    def seal(self, secret: Secret) -> Secret:
        plain = json.dumps(secret.data, sort_keys=True, separators=(",", ":")).encode()
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plain, self._aad(secret))
        envelope = f"{_PREFIX}{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"
        return replace(secret, data={}, sealed=envelope)

    def open(self, secret: Secret) -> Secret:
        if not secret.sealed:
            return secret
        name = f"{secret.meta.namespace}/{secret.meta.name}"
        if secret.sealed.startswith(_PREFIX):
            prefix, aad = _PREFIX, self._aad(secret)
        elif (
            secret.sealed.startswith(_LEGACY_PREFIX) and secret.meta.namespace == DEFAULT_NAMESPACE
        ):
            prefix, aad = _LEGACY_PREFIX, self._legacy_aad(secret)
        else:
            raise StoreError(f"secret {name}: unknown encryption envelope")
        key_id, _, body = secret.sealed[len(prefix) :].partition(":")
        if key_id != self.key_id:
            raise StoreError(
                f"secret {name} was encrypted with key {key_id}, but {KEY_FILE} holds key "
                f"{self.key_id}: restore the data dir's original {KEY_FILE} (masters sharing "
                f"one etcd need the same {KEY_FILE} in each data dir)"
            )
        raw = base64.b64decode(body)
        try:
            plain = self._aead.decrypt(raw[:12], raw[12:], aad)
        except InvalidTag:
            raise StoreError(f"secret {name}: its encrypted data is damaged") from None
        data = json.loads(plain)
        return replace(secret, data={str(k): str(v) for k, v in data.items()}, sealed="")


class SealingStore:
    """A Store that keeps Secrets sealed in `inner` and plain above it."""

    def __init__(self, inner: Store, sealer: SecretSealer) -> None:
        self.inner = inner
        self._sealer = sealer

    def load_all(self) -> list[StoredObject]:
        return [self.opened(o) for o in self.inner.load_all()]

    def opened(self, obj: StoredObject) -> StoredObject:
        """`obj` as read from `inner` (e.g. by a follower's watch), as memory holds it."""
        return self._sealer.open(obj) if isinstance(obj, Secret) else obj

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        sealed = [self._sealer.seal(o) if isinstance(o, Secret) else o for o in puts]
        self.inner.write(sealed, deletes, meta)

    def meta_get(self, key: str) -> str | None:
        return self.inner.meta_get(key)

    def meta_set(self, key: str, value: str) -> None:
        self.inner.meta_set(key, value)

    def close(self) -> None:
        self.inner.close()
