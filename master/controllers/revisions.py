"""Rollout history: which pod templates a deployment has had, numbered like Kubernetes.

Each distinct template gets a revision number; re-applying a template the
deployment had before (`rollout undo`, or a manual revert) moves that old
revision to the next number instead of adding a duplicate, as Kubernetes does
with its ReplicaSets. At most `limit` old revisions are kept besides the current
one (Kubernetes' revisionHistoryLimit default is 10).
"""

from __future__ import annotations

from master.controllers.naming import template_hash
from master.model import Deployment, DeploymentRevision, PodTemplate

HISTORY_LIMIT = 10
CHANGE_CAUSE = "kubernetes.io/change-cause"


def record_revision(
    history: tuple[DeploymentRevision, ...],
    template: PodTemplate,
    now: float,
    change_cause: str = "",
    limit: int = HISTORY_LIMIT,
) -> tuple[DeploymentRevision, ...]:
    """The history after `template` becomes current (unchanged if it already is)."""
    hash_ = template_hash(template)
    if history and history[-1].template_hash == hash_:
        return history
    next_number = max((r.revision for r in history), default=0) + 1
    older = tuple(r for r in history if r.template_hash != hash_)
    current = DeploymentRevision(next_number, hash_, template, now, change_cause)
    return (*older[-limit:], current)


class RollbackError(ValueError):
    """A rollback that cannot happen; the message is one sentence for the user."""


def rollback_template(dep: Deployment, to_revision: int = 0) -> PodTemplate:
    """The template `rollout undo` goes back to: the previous one, or a given revision."""
    if to_revision:
        for rev in dep.history:
            if rev.revision == to_revision:
                return rev.template
        known = ", ".join(str(r.revision) for r in dep.history) or "none"
        raise RollbackError(
            f"deployment {dep.meta.name} has no revision {to_revision} (revisions: {known})"
        )
    if len(dep.history) < 2:
        raise RollbackError(f"deployment {dep.meta.name} has no previous revision to go back to")
    return dep.history[-2].template
