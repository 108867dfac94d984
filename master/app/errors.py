"""The one error type the use cases raise, with a code every edge can map.

`code` says what kind of refusal it is, so the gRPC edge can answer
INVALID_ARGUMENT / NOT_FOUND / ALREADY_EXISTS / FAILED_PRECONDITION /
UNAVAILABLE / INTERNAL and the HTTP edge 422 / 404 / 409 / 409 / 503 / 500
without either re-deciding anything. The message is the one sentence the user
reads.

`commit` runs a use case's write plan as one ClusterState commit: a refusal
raised by the plan writes nothing, and a store failure (a full disk) becomes
AppError("internal") with nothing changed in memory or on disk — "internal"
(as Kubernetes answers 500 when etcd refuses a write), not "unavailable":
the master is reachable, and clients read UNAVAILABLE as "cannot reach".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, TypeVar

from master.state import ClusterState
from master.store.port import NotLeaderError, OutcomeUnknown, StoreError

log = logging.getLogger(__name__)

R = TypeVar("R")

ErrorCode = Literal[
    "invalid",
    "not_found",
    "already_exists",
    "failed_precondition",
    "unavailable",
    "internal",
    "resource_exhausted",
    "outcome_unknown",
]

# Kind -> plural resource name, as kubectl and Kubernetes' error messages spell it.
PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "Pod": "pods",
    "Node": "nodes",
    "Event": "events",
    "Endpoints": "endpoints",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "PersistentVolume": "persistentvolumes",
    "StatefulSet": "statefulsets",
    "Ingress": "ingresses",
    "Namespace": "namespaces",
}


class AppError(Exception):
    """A request the cluster refuses; nothing was changed (but for "outcome_unknown": the
    store could not say whether the change was saved)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


def not_found(kind: str, name: str) -> AppError:
    """Kubernetes' wording: `deployments "web" not found`."""
    return AppError("not_found", f'{PLURALS.get(kind, kind.lower())} "{name[:253]}" not found')


async def commit(state: ClusterState, plan: Callable[[], R]) -> R:
    """Run `plan` (synchronous; raises AppError to refuse) as one durable commit."""
    try:
        return await state.commit(plan)
    except NotLeaderError as e:
        # Not a failure of this master: the client should send the write to the leader.
        raise AppError("unavailable", f"nothing was changed: {e}") from None
    except OutcomeUnknown as e:
        # etcd may still commit it: telling the client "nothing was changed" would be a lie
        # (a refused scale whose pod appeared later). Kubernetes answers 504 Timeout so.
        log.error("a write's outcome is unknown: %s", e)
        raise AppError(
            "outcome_unknown",
            f"the change may or may not have been saved: {e}; it takes effect if etcd "
            f"commits it when its quorum returns, so check with `pinnace get` before retrying",
        ) from None
    except StoreError as e:
        log.error("a write was refused by the store: %s", e)
        raise AppError(
            "internal",
            f"nothing was changed: the master could not save the change ({e}); "
            f"free space or fix its data directory, then retry",
        ) from None
