"""`pinnace token create|list|revoke`: join tokens for agents (admin credentials needed).

`create` prints the token alone on stdout, so `TOKEN=$(pinnace token create)`
works; `list` shows each token's id, time left, expiry, uses and status (never
the secret: the master does not keep it); `revoke ID` stops a token from being
used to join (nodes that already joined keep their certificates).
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from master.api.tables import format_table
from master.cli.client import CliError, MasterClient
from master.pki.tokens import DEFAULT_TTL, format_duration, parse_duration
from protos import security_pb2, security_pb2_grpc

HEADER = ["TOKEN-ID", "TTL", "EXPIRES", "USES", "STATUS", "DESCRIPTION"]


def ttl_seconds(text: str | None) -> float:
    if text is None:
        return DEFAULT_TTL
    try:
        return parse_duration(text)
    except ValueError as e:
        raise CliError(f"error: --ttl: {e}") from None


def _row(info: security_pb2.TokenInfo, now: float) -> list[str]:
    if info.expires_at:
        ttl = format_duration(info.expires_at - now) if info.expires_at > now else "-"
        expires = dt.datetime.fromtimestamp(info.expires_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        ttl, expires = "<forever>", "<never>"
    if info.revoked:
        status = "revoked"
    elif info.expires_at and info.expires_at <= now:
        status = "expired"
    else:
        status = "valid"
    return [info.id, ttl, expires, str(info.uses), status, info.description or "<none>"]


def run_token(address: str, action: str, ttl: str | None, description: str, token_id: str) -> int:
    ttl_value = ttl_seconds(ttl) if action == "create" else 0.0
    if action == "revoke" and not token_id:
        raise CliError("error: token revoke: give the TOKEN-ID (see `pinnace token list`)")
    client = MasterClient(address)
    stub = security_pb2_grpc.TokenServiceStub(client.channel)
    try:
        if action == "create":
            created = client.call(
                stub.CreateToken,
                security_pb2.CreateTokenRequest(ttl_seconds=ttl_value, description=description),
            )
            print(created.token)
        elif action == "list":
            listed = client.call(stub.ListTokens, security_pb2.ListTokensRequest())
            if not listed.tokens:
                print("No join tokens.", file=sys.stderr)
                return 0
            now = time.time()
            print(format_table(HEADER, [_row(t, now) for t in listed.tokens]))
        else:
            revoked = client.call(stub.RevokeToken, security_pb2.RevokeTokenRequest(id=token_id))
            print(f"join token {revoked.token.id} revoked")
    finally:
        client.close()
    return 0
