"""What the CLI says when a call fails: one sentence per gRPC status, without gRPC.

The CLI reaches the master two ways: through grpcio (master/cli/client.py, every verb) and,
for `apply`, through its own HTTP/2 call (master/cli/h2_unary.py), which must not import
grpcio. Both name a failure by its status code's name ("UNAVAILABLE"), and both turn it
into the same sentence here, so a user meets the same words whichever path sent the call.
"""

from __future__ import annotations

# How a master's own UNAVAILABLE answers begin (master/app/errors.py), unlike gRPC's.
REFUSED = "nothing was changed: "

# gRPC's status codes by number (as the grpc-status trailer carries them).
STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)


def status_name(code: int) -> str:
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else "UNKNOWN"


def passes_on(code: str) -> bool:
    """Whether another master may take this call: this one is unreachable or a follower."""
    return code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def status_sentence(code: str, details: str, address: str) -> str | None:
    """The sentence for a call that ended with status `code` (a name; "" when unknown), or
    None when it means the master was not reached (the caller says why: unreachable)."""
    if code == "UNAVAILABLE" and (details or "").startswith(REFUSED):
        # The master answered: it may not write now (a follower); its sentence says why.
        return f"error: {details}"
    if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return None
    if code == "NOT_FOUND":
        return f"Error from server (NotFound): {details}"
    if code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "INTERNAL"):
        # An apply of many files reports every invalid document, one per line; INTERNAL is
        # the master's own sentence too (e.g. its store is full).
        return "\n".join(f"error: {line}" for line in details.splitlines())
    if code == "UNIMPLEMENTED":
        return (
            f"error: the master at {address} does not offer this call "
            f"(a master started with --insecure has no join tokens)"
        )
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return f"error: the master refused the call: {details}"
    if code == "RESOURCE_EXHAUSTED":
        return f"error: the request is too large for the master: {details}"
    return f"error from the master ({code or 'unknown'}): {details}"


def unreachable_sentence(address: str, addresses: list[str], source: str, tls_failed: bool) -> str:
    """Why no master took the call: TLS with `address` failed (its TCP port answers, so the
    credentials from `source` or the certificate's names are wrong), or nothing answered."""
    if tls_failed:
        host = address.rpartition(":")[0].strip("[]")
        return (
            f"cannot establish TLS with the pinnace master at {address}: check that "
            f"{source} is for this cluster and that the master's "
            f"certificate names {host} (master flag --tls-san), or pass --insecure if the "
            f"master runs with --insecure"
        )
    if len(addresses) > 1:
        return (
            f"cannot reach any pinnace master of {','.join(addresses)}: is one "
            f"running? (set the addresses with --master or PINNACE_MASTER)"
        )
    return (
        f"cannot reach the pinnace master at {address}: is `pinnace master` running? "
        f"(set the address with --master or PINNACE_MASTER)"
    )
