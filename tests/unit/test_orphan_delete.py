"""Delete with propagationPolicy Orphan: the owner goes, its pods (and claims) stay unowned.

Over the real controller manager (ClusterState + MemoryStore, fake clock): after the
orphaning delete, a reconcile pass leaves the pods running; a Background delete (as
before) still stops them.
"""

from __future__ import annotations

import asyncio

import pytest

from kernel.clock import FakeClock
from master.api.kube import errors, writes
from master.api.kube.resources import resource
from master.api.render import render_object
from master.app.orphans import orphans
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import (
    Container,
    Event,
    ObjectMeta,
    PersistentVolumeClaim,
    Pod,
    PodSpec,
)
from master.state import ClusterState
from master.store import MemoryStore
from tests.unit.ready_nodes import add_ready_node, web_deployment


def _cluster() -> tuple[ClusterState, ControllerManager]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases, lease_seconds=30.0)
    add_ready_node(state, leases, clock, "n1", 2**32)
    state.put(web_deployment(2))
    manager.run_pass()
    assert len(state.pods()) == 2
    return state, manager


def _delete(state: ClusterState, manager: ControllerManager, options: dict[str, object]) -> None:
    deployments = resource("apps", "deployments")
    assert deployments is not None
    asyncio.run(writes.delete(state, manager, deployments, "web", options, 0.0, False))
    manager.run_pass()


def test_an_orphaning_delete_removes_the_deployment_and_leaves_its_pods_running_unowned() -> None:
    state, manager = _cluster()

    _delete(state, manager, {"propagationPolicy": "Orphan"})

    assert state.get("Deployment", "web") is None
    pods = state.pods()
    assert len(pods) == 2
    assert all(not p.deletion_requested_at and p.owner == "" for p in pods)
    assert all("ownerReferences" not in render_object(p, 0.0)["metadata"] for p in pods)
    manager.run_pass()  # nothing comes back for them later either
    assert len(state.pods()) == 2 and not any(p.deletion_requested_at for p in state.pods())
    orphaned = [
        e for e in state.objects("Event") if isinstance(e, Event) and e.reason == "Orphaned"
    ]
    assert len(orphaned) == 1 and "its 2 pods and 0 claims stay" in orphaned[0].message


def test_the_old_orphan_dependents_flag_orphans_too() -> None:
    state, manager = _cluster()
    _delete(state, manager, {"orphanDependents": True})
    assert len(state.pods()) == 2 and not any(p.deletion_requested_at for p in state.pods())


@pytest.mark.parametrize("policy", ["Background", "Foreground", None])
def test_background_and_foreground_deletes_still_stop_the_pods(policy: str | None) -> None:
    state, manager = _cluster()
    _delete(state, manager, {"propagationPolicy": policy} if policy else {})
    assert state.get("Deployment", "web") is None
    assert all(p.deletion_requested_at for p in state.pods())


def test_an_unknown_policy_is_invalid() -> None:
    state, manager = _cluster()
    with pytest.raises(errors.KubeError, match="not one of Orphan, Background, Foreground"):
        _delete(state, manager, {"propagationPolicy": "Sideways"})
    assert state.get("Deployment", "web") is not None


def _pod(name: str, owner: str, namespace: str = "default", stopping: float = 0.0) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name, namespace=namespace),
        spec=PodSpec(containers=(Container("c", "img"),)),
        owner=owner,
        deletion_requested_at=stopping,
    )


def test_orphans_of_a_statefulset_are_its_pods_and_claims_of_its_namespace_only() -> None:
    pods = [
        _pod("db-0", "StatefulSet/db"),
        _pod("db-1", "StatefulSet/db", stopping=5.0),  # going anyway: left alone
        _pod("db-x", "db"),  # a Deployment named db: not the set's
        _pod("db-0", "StatefulSet/db", namespace="other"),
    ]
    rwo = ("ReadWriteOnce",)
    claims = [
        PersistentVolumeClaim(ObjectMeta(name="data-db-0"), rwo, 1, owner="StatefulSet/db"),
        PersistentVolumeClaim(ObjectMeta(name="keep"), rwo, 1),
    ]

    kept = orphans("StatefulSet", "db", "default", pods, claims)

    assert [(o.kind, o.meta.name, o.meta.namespace, o.owner) for o in kept] == [
        ("Pod", "db-0", "default", ""),
        ("PersistentVolumeClaim", "data-db-0", "default", ""),
    ]
    assert orphans("Service", "db", "default", pods, claims) == []
    assert [p.meta.name for p in orphans("Deployment", "db", "default", pods)] == ["db-x"]
