"""The namespace controller's decisions (pure): a default ServiceAccount in every Active
namespace, and emptying a Terminating one.

Deleting a namespace (master/app/namespaces.py) only marks it Terminating. Each pass
then looks at what is still in it:

- every object but pods and claims in use is deleted at once: Deployments and
  StatefulSets first in the list (their controllers then stop asking for pods),
  Services (the load balancer drops their frontends and backends), ConfigMaps,
  Secrets, ServiceAccounts, Events;
- every pod is stopped the graceful way (drained from the load balancer, then
  SIGTERM on its node), as `delete pod` does;
- a claim waits until no pod of the namespace uses it (its data must not vanish
  under a running container), then goes;
- once no pod is left, the namespace object itself goes.

A namespace that still holds pods `STUCK_AFTER` seconds after its deletion gets one
Warning naming them (a node that does not answer keeps its pods until it is judged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from master.model import Namespace, Pod

TERMINATING = "Terminating"
STUCK_AFTER = 60.0
# Deleted first, so no controller makes new pods while the rest goes.
_OWNERS_FIRST = ("Deployment", "StatefulSet")


@dataclass(frozen=True, slots=True)
class NamespaceContents:
    """What one namespace holds: its pods, and (kind, name) of every other object."""

    pods: tuple[Pod, ...] = ()
    others: tuple[tuple[str, str], ...] = ()
    has_default_account: bool = True


@dataclass(frozen=True, slots=True)
class CreateDefaultAccount:
    namespace: str


@dataclass(frozen=True, slots=True)
class DeleteObject:
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class StopPod:
    name: str


@dataclass(frozen=True, slots=True)
class RemoveNamespace:
    name: str


@dataclass(frozen=True, slots=True)
class ReportStuck:
    message: str


NamespaceAction = CreateDefaultAccount | DeleteObject | StopPod | RemoveNamespace | ReportStuck


def _order(others: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(others, key=lambda o: (o[0] not in _OWNERS_FIRST, o[0], o[1]))


def reconcile_namespace(
    ns: Namespace, contents: NamespaceContents, now: float, stuck_reported: bool = False
) -> list[NamespaceAction]:
    """What one pass does for one namespace; `stuck_reported`: the Warning was given."""
    if ns.phase != TERMINATING:
        if contents.has_default_account:
            return []
        return [CreateDefaultAccount(ns.meta.name)]
    claims_in_use = {c for p in contents.pods for c in p.spec.claim_names()}
    actions: list[NamespaceAction] = []
    for kind, name in _order(contents.others):
        if kind == "PersistentVolumeClaim" and name in claims_in_use:
            continue
        actions.append(DeleteObject(kind, name))
    for pod in sorted(contents.pods, key=lambda p: p.meta.name):
        if not pod.deletion_requested_at:
            actions.append(StopPod(pod.meta.name))
    if not contents.pods:
        actions.append(RemoveNamespace(ns.meta.name))
    elif not stuck_reported and now - ns.deletion_requested_at >= STUCK_AFTER:
        names = sorted(p.meta.name for p in contents.pods)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        actions.append(
            ReportStuck(
                f"namespace {ns.meta.name} has been Terminating for "
                f"{now - ns.deletion_requested_at:.0f}s; it waits for pod {shown} to stop "
                f"(a pod on a node that does not answer goes once the node is judged NotReady)"
            )
        )
    return actions
