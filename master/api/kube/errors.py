"""Kubernetes `Status` errors: what every refused HTTP call answers.

kubectl and the client libraries read `reason` and `code` to decide what a
failure means (NotFound, AlreadyExists, Conflict, Invalid ...) and print
`message`; a 422 Invalid names each bad field in `details.causes`. Messages
follow Kubernetes' wording (`deployments.apps "web" not found`); a validation
error carries pinnace's own sentence, the same the CLI prints, without the
file/document prefix that only makes sense for files.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


class KubeError(Exception):
    """A refusal to send back as a Status object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Obj | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        out: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def qualified(resource: str, group: str) -> str:
    """`deployments.apps` or `pods`: how Kubernetes names a resource in messages."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> KubeError:
    return KubeError(
        404,
        "NotFound",
        f'{qualified(resource, group)} "{name[:253]}" not found',
        {"name": name[:253], "group": group, "kind": resource},
    )


def already_exists(resource: str, group: str, name: str) -> KubeError:
    return KubeError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name[:253]}" already exists',
        {"name": name[:253], "group": group, "kind": resource},
    )


def conflict(resource: str, group: str, name: str, why: str) -> KubeError:
    return KubeError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name[:253]}": {why}',
        {"name": name[:253], "group": group, "kind": resource},
    )


def bad_request(message: str) -> KubeError:
    return KubeError(400, "BadRequest", message)


def method_not_allowed(message: str) -> KubeError:
    return KubeError(405, "MethodNotAllowed", message)


def gone(message: str) -> KubeError:
    return KubeError(410, "Expired", message)


def split_manifest_error(text: str) -> tuple[str, str]:
    """`<file>: document <n>: <field>: <reason>` -> (field path, reason).

    The validators always put the field path right after the document number;
    errors that are not about one field (YAML syntax) have an empty path.
    """
    parts = text.split(": ", 3)
    if len(parts) >= 3 and parts[1].startswith("document "):
        rest = parts[2:] if len(parts) == 3 else [parts[2], parts[3]]
        if len(rest) == 2 and not rest[0].startswith("line "):
            return rest[0], rest[1]
        return "", ": ".join(rest)
    return "", text


def invalid(kind: str, group: str, name: str, manifest_error: str) -> KubeError:
    """422 Invalid for a validation failure, naming the field as the CLI does."""
    path, reason = split_manifest_error(manifest_error)
    where = f"{path}: {reason}" if path else reason
    causes = [{"reason": "FieldValueInvalid", "message": reason, "field": path}]
    return KubeError(
        422,
        "Invalid",
        f'{qualified(kind, group)} "{name[:253]}" is invalid: {where}',
        {"name": name[:253], "group": group, "kind": kind, "causes": causes},
    )
