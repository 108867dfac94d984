"""Namespaces: where an apply may put objects, and what deleting a namespace means.

Every API edge (gRPC, the Kubernetes HTTP API) goes through here, so the rules
are decided once:

- An object goes into an existing, Active namespace, or into one a Namespace
  document of the same apply creates. A missing namespace is refused with
  Kubernetes' wording (`namespaces "x" not found`) prefixed with the file,
  document and field when the objects came from files; a Terminating one with
  Kubernetes' "is being terminated" sentence. Nothing of the apply is stored.
- Deleting a namespace marks it Terminating; the namespace controller
  (master/controllers/namespaces.py) empties it and then removes it. The
  `default` namespace cannot be deleted (Kubernetes forbids it too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from master.app.errors import AppError
from master.model import (
    DEFAULT_NAMESPACE,
    Namespace,
    StoredObject,
    is_namespaced,
)
from master.state import ClusterState

TERMINATING = "Terminating"
ACTIVE = "Active"
# (kind, name, namespace) -> the stored object (ClusterState.get).
Lookup = Callable[[str, str, str], StoredObject | None]


def _where(sources: Sequence[str], index: int) -> str:
    return f"{sources[index]}: metadata.namespace: " if index < len(sources) else ""


def check_namespaces(
    objects: Sequence[StoredObject], lookup: Lookup, sources: Sequence[str] = ()
) -> None:
    """Refuse (AppError) an object whose namespace is missing or Terminating (pure).

    `sources[i]` says where objects[i] came from ("file: document N"), when known."""
    created = {o.meta.name for o in objects if isinstance(o, Namespace)}
    for i, obj in enumerate(objects):
        if not is_namespaced(obj.kind):
            continue
        ns = obj.meta.namespace
        if ns == DEFAULT_NAMESPACE:
            continue  # always there: made at the master's first start, never deleted
        stored = lookup("Namespace", ns, "")
        if isinstance(stored, Namespace):
            if stored.phase == TERMINATING:
                raise AppError(
                    "failed_precondition",
                    f"{_where(sources, i)}{obj.kind.lower()} {obj.meta.name}: unable to create "
                    f"new content in namespace {ns} because it is being terminated; wait until "
                    f"`get namespace {ns}` no longer finds it, then create it again",
                )
            continue
        if ns in created:
            continue
        where = _where(sources, i)
        fix = (
            f" (create it first: `pinnace create namespace {ns}`, or add a Namespace "
            f"document to this apply)"
            if where
            else ""
        )
        raise AppError("not_found", f'{where}namespaces "{ns}" not found{fix}')


def mark_terminating(state: ClusterState, name: str, now: float) -> Namespace:
    """Inside a plan: the namespace, Terminating from now (AppError for `default`)."""
    if name == DEFAULT_NAMESPACE:
        raise AppError(
            "failed_precondition",
            f'namespaces "{DEFAULT_NAMESPACE}" is forbidden: this namespace may not be deleted',
        )
    ns = state.get("Namespace", name)
    if not isinstance(ns, Namespace):
        raise AppError("not_found", f'namespaces "{name[:63]}" not found')
    if ns.phase == TERMINATING:
        return ns
    stored = state.put(replace(ns, phase=TERMINATING, deletion_requested_at=now))
    state.record_event(
        "Namespace", name, "Terminating", f"namespace {name} is being deleted with all it holds"
    )
    return stored
