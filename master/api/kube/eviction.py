"""The pods/eviction subresource (policy/v1 Eviction): what `kubectl drain` asks pod by pod.

kubectl drain cordons the node, lists its pods, and POSTs an Eviction for each when
/api/v1 lists `pods/eviction` (group policy, version v1); otherwise it deletes them.
The decision is pinnace drain's (master/app/drain.py `evict_pod`), answered as
Kubernetes' API server answers an eviction:

- allowed: 201 with a Success Status; the pod stops gracefully (the Eviction's
  `deleteOptions.gracePeriodSeconds` replaces its own, `dryRun: [All]` stops nothing);
- the deployment's budget is spent (a PodDisruptionBudget's refusal on Kubernetes):
  429 TooManyRequests naming the deployment; kubectl prints it and retries every 5 s
  while the replacement starts elsewhere;
- the pod can never move (its claim's data lives on this node): 500 InternalError with
  pinnace drain's sentence, as Kubernetes answers an eviction it can never grant (a pod
  under two budgets); kubectl prints it and stops, naming the pod, and the node stays
  cordoned, as `pinnace drain` leaves it.
"""

from __future__ import annotations

from typing import Any

from master.api.kube import errors
from master.api.kube.writes import grace_period
from master.app.delete import NodeLifecycle
from master.app.drain import Verdict, evict_pod
from master.app.errors import AppError
from master.state import ClusterState

Obj = dict[str, Any]

# How long Kubernetes tells a refused eviction to wait (kubectl waits 5 s regardless).
RETRY_AFTER_SECONDS = 10


def eviction_options(body: object, name: str) -> tuple[int | None, bool]:
    """(gracePeriodSeconds, dryRun) of an Eviction body (JSON or protobuf, already
    decoded); a body naming another pod is refused, as Kubernetes refuses it."""
    if body in (None, {}):
        return None, False
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a policy/v1 Eviction object")
    if body.get("kind") not in (None, "", "Eviction", "DeleteOptions"):
        raise errors.bad_request(
            f"the body's kind {str(body.get('kind'))[:60]!r} is not Eviction (pods/eviction)"
        )
    named = (body.get("metadata") or {}).get("name")
    if named not in (None, "", name):
        raise errors.bad_request(
            f"name in URL does not match name in Eviction object ({str(named)[:253]!r})"
        )
    options = body.get("deleteOptions") or {}
    if not isinstance(options, dict):
        raise errors.bad_request("deleteOptions must be an object")
    dry = options.get("dryRun") or ()
    return grace_period(options.get("gracePeriodSeconds")), "All" in dry


def answer(verdict: Verdict, name: str) -> Obj:
    """The Status of an eviction that went through; a KubeError for one that did not."""
    if verdict.action == "wait":
        raise errors.KubeError(
            429, "TooManyRequests",
            f"Cannot evict pod as it would violate the pod's disruption budget: "
            f"{verdict.reason}",
            {"name": name, "kind": "pods", "retryAfterSeconds": RETRY_AFTER_SECONDS,
             "causes": [{"reason": "DisruptionBudget", "message": verdict.reason}]},
        )  # fmt: skip
    if verdict.action == "blocked":
        raise errors.KubeError(
            500, "InternalError",
            f'Internal error occurred: pod "{name}" cannot be evicted: {verdict.reason}',
            {"name": name, "kind": "pods",
             "causes": [{"reason": "PodCannotMove", "message": verdict.reason}]},
        )  # fmt: skip
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


async def evict(
    state: ClusterState, lifecycle: NodeLifecycle, name: str, namespace: str, body: object,
    dry_run: bool,
) -> Obj:  # fmt: skip
    grace, dry_in_body = eviction_options(body, name)
    try:
        verdict = await evict_pod(state, lifecycle, name, namespace, grace, dry_run or dry_in_body)
    except AppError as e:
        if e.code == "not_found":
            raise errors.not_found("pods", "", name) from None
        raise errors.KubeError(409, "Conflict", e.message) from None
    return answer(verdict, name)
