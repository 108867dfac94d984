"""The one error type the use cases raise, with a code every edge can map.

`code` says what kind of refusal it is, so the gRPC edge can answer
INVALID_ARGUMENT / NOT_FOUND / ALREADY_EXISTS / FAILED_PRECONDITION and the
HTTP edge 422 / 404 / 409 / 409 without either re-deciding anything. The
message is the one sentence the user reads.
"""

from __future__ import annotations

from typing import Literal

ErrorCode = Literal["invalid", "not_found", "already_exists", "failed_precondition"]

# Kind -> plural resource name, as kubectl and Kubernetes' error messages spell it.
PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "Pod": "pods",
    "Node": "nodes",
    "Event": "events",
    "Endpoints": "endpoints",
}


class AppError(Exception):
    """A request the cluster refuses; nothing was changed."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


def not_found(kind: str, name: str) -> AppError:
    """Kubernetes' wording: `deployments "web" not found`."""
    return AppError("not_found", f'{PLURALS.get(kind, kind.lower())} "{name[:253]}" not found')
