"""Who in the master writes an object, named as Kubernetes names the same writer.

Kubernetes records a manager per writer in metadata.managedFields: the
ReplicaSet and StatefulSet controllers create pods as `kube-controller-manager`,
the kubelet writes a pod's status as `kubelet` (subresource status), the
scheduler marks a pod unschedulable as `kube-scheduler`, and each component's
events carry its own name. pinnace's master does all of that work itself, so its
writes are recorded under those names: tools and people reading managedFields
(`kubectl get -o yaml --show-managed-fields`) see who changed what, as on
Kubernetes. The bookkeeping itself needs the rendered wire shape, so it lives
at the API edge (master/api/fieldowners.py) and is handed to ClusterState as a
`WriterFields`; this module only names writers.
"""

from __future__ import annotations

from typing import Protocol

from master.model import ManagedFieldsEntry, StoredObject

CONTROLLER_MANAGER = "kube-controller-manager"
KUBELET = "kubelet"
SCHEDULER = "kube-scheduler"
# An event's source component as pinnace's master records it.
MASTER_SOURCE = "master"


class WriterFields(Protocol):
    """The managedFields `planned` carries after `writer`'s Update of `existing` (None
    when it creates it), through `subresource` or "" for the object itself, as of `now`.
    The ledger, not the object: ClusterState.put_by puts it into the metadata it makes
    for the put anyway (a copy of the object less per write)."""

    def __call__(
        self,
        existing: StoredObject | None,
        planned: StoredObject,
        writer: str,
        subresource: str,
        now: float,
    ) -> tuple[ManagedFieldsEntry, ...]: ...


def untracked(
    existing: StoredObject | None,
    planned: StoredObject,
    writer: str,
    subresource: str,
    now: float,
) -> tuple[ManagedFieldsEntry, ...]:
    """No bookkeeping (unit tests of the controllers and the state): the ledger as it is."""
    return planned.meta.managed_fields


def event_writer(source: str) -> str:
    """The manager of an event by its source: the master's controllers, or a node's agent
    (whose events the kubelet writes on Kubernetes)."""
    return CONTROLLER_MANAGER if source == MASTER_SOURCE else KUBELET
