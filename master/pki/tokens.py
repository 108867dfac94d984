"""Join tokens: their format, how they are made and checked (pure; no I/O, no clock).

A join token is what `pinnace token create` prints and `pinnace agent --token`
takes, modelled on kubeadm's bootstrap token plus its
`--discovery-token-ca-cert-hash`, folded into one string:

    pinnace1.<id>.<secret>.<ca-hash>

- `id`: 8 characters [a-z0-9], public: it names the token in `token list` and
  `token revoke`;
- `secret`: 24 characters [a-z0-9] (~124 bits); the master stores only its
  SHA-256 and compares in constant time;
- `ca-hash`: unpadded base64url SHA-256 of the cluster CA's DER
  SubjectPublicKeyInfo (43 characters). The agent pins the master's CA to it
  before trusting anything the master says, so a man in the middle cannot pose
  as the master even to a brand-new node.

Only `<id>.<secret>` goes over the wire. A token may be used by any number of
agents until it expires (`--ttl`, default 24h; 0 = never) or is revoked.
Expired and revoked tokens stay listed for a day, then are pruned.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kernel.names import JOIN_TOKEN

PREFIX = "pinnace1"
ID_LENGTH = 8
SECRET_LENGTH = 24
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
DEFAULT_TTL = 24 * 3600.0
# Expired or revoked tokens are listed this long, then forgotten.
KEEP_DEAD = 24 * 3600.0
MAX_TOKENS = 1000
MAX_DESCRIPTION = 200

_WIRE = re.compile(r"([a-z0-9]{8})\.([a-z0-9]{24})")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class TokenFormatError(ValueError):
    """A token string that is not a pinnace join token; the message is one sentence."""


@dataclass(frozen=True, slots=True)
class JoinToken:
    id: str
    secret: str
    ca_hash: str

    @property
    def wire(self) -> str:
        return f"{self.id}.{self.secret}"

    def __str__(self) -> str:
        return f"{PREFIX}.{self.id}.{self.secret}.{self.ca_hash}"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the master keeps about a token (never the secret itself)."""

    id: str
    secret_sha256: str
    created_at: float
    # 0: never expires.
    expires_at: float = 0.0
    uses: int = 0
    revoked_at: float = 0.0
    description: str = ""

    def expired(self, now: float) -> bool:
        return bool(self.expires_at) and now >= self.expires_at

    def status(self, now: float) -> str:
        if self.revoked_at:
            return "revoked"
        return "expired" if self.expired(now) else "valid"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "secret_sha256": self.secret_sha256,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "uses": self.uses,
            "revoked_at": self.revoked_at,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenRecord:
        return cls(
            id=str(data["id"]),
            secret_sha256=str(data["secret_sha256"]),
            created_at=float(data.get("created_at", 0.0)),
            expires_at=float(data.get("expires_at", 0.0)),
            uses=int(data.get("uses", 0)),
            revoked_at=float(data.get("revoked_at", 0.0)),
            description=str(data.get("description", "")),
        )


def _random(length: int, choice: Callable[[str], str]) -> str:
    return "".join(choice(ALPHABET) for _ in range(length))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_token(
    ca_hash: str,
    now: float,
    ttl: float,
    description: str = "",
    choice: Callable[[str], str] = secrets.choice,
) -> tuple[JoinToken, TokenRecord]:
    token = JoinToken(_random(ID_LENGTH, choice), _random(SECRET_LENGTH, choice), ca_hash)
    record = TokenRecord(
        id=token.id,
        secret_sha256=_digest(token.secret),
        created_at=now,
        expires_at=now + ttl if ttl > 0 else 0.0,
        description=description[:MAX_DESCRIPTION],
    )
    return token, record


def parse_token(text: str) -> JoinToken:
    """The agent's view of `--token`: id, secret and the CA pin."""
    match = JOIN_TOKEN.fullmatch(text.strip())
    if match is None:
        raise TokenFormatError(
            "the join token is malformed: expected pinnace1.<id>.<secret>.<ca-hash> "
            "as `pinnace token create` prints it"
        )
    return JoinToken(*match.groups())


def parse_wire_token(text: str) -> tuple[str, str] | None:
    """The master's view of JoinNodeRequest.token: (id, secret), or None if malformed."""
    match = _WIRE.fullmatch(text)
    return (match.group(1), match.group(2)) if match else None


def check_token(record: TokenRecord | None, secret: str, now: float) -> str:
    """Why this token may not be used to join now, or "" when it may."""
    if record is None or not hmac.compare_digest(record.secret_sha256, _digest(secret)):
        return (
            "the join token is not valid (unknown, or its secret is wrong): "
            "create one on the master with `pinnace token create`"
        )
    if record.revoked_at:
        return (
            f"the join token {record.id} was revoked: create a new one with `pinnace token create`"
        )
    if record.expired(now):
        return (
            f"the join token {record.id} has expired: create a new one with `pinnace token create`"
        )
    return ""


def record_use(record: TokenRecord) -> TokenRecord:
    return replace(record, uses=record.uses + 1)


def prune(records: dict[str, TokenRecord], now: float) -> dict[str, TokenRecord]:
    """Forget tokens that have been expired or revoked for longer than KEEP_DEAD."""

    def dead_since(r: TokenRecord) -> float:
        ends = [t for t in (r.revoked_at, r.expires_at) if t]
        return min(ends) if ends else 0.0

    return {
        k: r for k, r in records.items() if not dead_since(r) or now - dead_since(r) < KEEP_DEAD
    }


def parse_duration(text: str) -> float:
    """'24h', '90d', '1h30m', '45s' or plain seconds -> seconds (ValueError if not)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value < 0 or value != value:
            raise ValueError(f"{text!r} is not a duration >= 0")
        return value
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 24h or 90d")
    return total


def format_duration(seconds: float) -> str:
    """Like kubeadm's TTL column: the largest whole unit (23h, 89d, 45s)."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
