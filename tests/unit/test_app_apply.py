"""The application layer's writes without any transport: apply, delete, scale, rollback.

Real ClusterState over a MemoryStore and a fake clock; the same calls serve the
gRPC servicer and the Kubernetes HTTP API, so what they decide is pinned here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.app.apply import FieldTracker, apply_objects, plan_apply
from master.app.delete import delete_objects
from master.app.errors import AppError
from master.app.queries import list_objects
from master.app.scale import rollback_deployment, scale_deployment
from master.model import (
    Container,
    Deployment,
    ManagedFieldsEntry,
    ObjectMeta,
    PodSpec,
    PodTemplate,
    Service,
    ServicePort,
    StoredObject,
)
from master.state import ClusterState
from master.store import MemoryStore


def _state() -> ClusterState:
    return ClusterState(MemoryStore(), FakeClock())


def _dep(image: str = "nginx:1", replicas: int = 2, app: str = "web") -> Deployment:
    container = Container(name="web", image=image)
    return Deployment(
        meta=ObjectMeta(name="web"),
        replicas=replicas,
        selector={"app": app},
        template=PodTemplate(labels={"app": app}, spec=PodSpec(containers=(container,))),
    )


class _Lifecycle:
    def __init__(self) -> None:
        self.pods: list[str] = []
        self.nodes: list[str] = []

    def delete_pod(self, name: str, reason: str, message: str, namespace: str = "default") -> bool:
        self.pods.append(name)
        return True

    def forget_node(self, name: str) -> bool:
        self.nodes.append(name)
        return True


def test_apply_creates_then_leaves_unchanged_then_configures_with_history() -> None:
    state = _state()

    (first,) = asyncio.run(apply_objects(state, [_dep()], 10.0))
    (again,) = asyncio.run(apply_objects(state, [_dep()], 11.0))
    (changed,) = asyncio.run(apply_objects(state, [_dep(image="nginx:2")], 12.0))

    assert (first.action, again.action, changed.action) == ("created", "unchanged", "configured")
    assert again.obj.meta.resource_version == first.obj.meta.resource_version
    stored = state.get("Deployment", "web")
    assert isinstance(stored, Deployment)
    assert stored.meta.uid == first.obj.meta.uid and stored.meta.generation == 2
    assert [r.revision for r in stored.history] == [1, 2]


def test_a_changed_selector_is_refused_and_nothing_of_the_batch_is_stored() -> None:
    state = _state()
    asyncio.run(apply_objects(state, [_dep()], 10.0))
    svc = Service(
        meta=ObjectMeta(name="web"), selector={"app": "web"}, ports=(ServicePort(80, "80"),)
    )

    with pytest.raises(AppError) as err:
        asyncio.run(apply_objects(state, [svc, _dep(app="other")], 11.0))

    assert err.value.code == "invalid" and "spec.selector: field is immutable" in err.value.message
    assert state.get("Service", "web") is None


def test_create_only_is_a_conflict_for_an_existing_object_and_dry_run_writes_nothing() -> None:
    state = _state()
    (planned,) = asyncio.run(apply_objects(state, [_dep()], 10.0, dry_run=True))
    assert planned.action == "created" and state.get("Deployment", "web") is None

    asyncio.run(apply_objects(state, [_dep()], 10.0))
    with pytest.raises(AppError) as err:
        plan_apply([_dep()], state.get, 11.0, create_only=True)
    assert err.value.code == "already_exists"


def test_scale_and_rollback_and_their_refusals() -> None:
    state = _state()
    asyncio.run(apply_objects(state, [_dep()], 10.0))
    asyncio.run(apply_objects(state, [_dep(image="nginx:2")], 11.0))

    scaled = asyncio.run(scale_deployment(state, "web", 5))
    same = asyncio.run(scale_deployment(state, "web", 5))
    rolled = asyncio.run(rollback_deployment(state, "web", 0, 12.0))

    assert scaled.replicas == 5 and same.meta.resource_version == scaled.meta.resource_version
    assert rolled.template.spec.containers[0].image == "nginx:1" and rolled.revision == 3
    for call, code in [
        (scale_deployment(state, "nope", 1), "not_found"),
        (scale_deployment(state, "web", -1), "invalid"),
        (rollback_deployment(state, "web", 9, 13.0), "failed_precondition"),
    ]:
        with pytest.raises(AppError) as err:
            asyncio.run(call)
        assert err.value.code == code


def test_delete_by_name_refuses_a_missing_object_and_by_file_reports_it() -> None:
    state = _state()
    asyncio.run(apply_objects(state, [_dep()], 10.0))
    lifecycle = _Lifecycle()

    with pytest.raises(AppError) as err:
        asyncio.run(delete_objects(state, lifecycle, [("Service", "web")], missing_ok=False))
    assert err.value.message == 'services "web" not found'
    results = asyncio.run(
        delete_objects(
            state,
            lifecycle,
            [("Service", "web"), ("Deployment", "web"), ("Pod", "p"), ("Node", "n")],
            missing_ok=True,
        )
    )

    assert [r.action for r in results] == ["not found", "deleted", "not found", "not found"]
    assert state.get("Deployment", "web") is None
    assert lifecycle.pods == [] and lifecycle.nodes == []


def test_list_objects_by_name_selector_and_unknown_kind() -> None:
    state = _state()
    asyncio.run(apply_objects(state, [_dep(), replace(_dep(), meta=ObjectMeta(name="api"))], 1.0))

    assert [o.meta.name for o in list_objects(state, "Deployment")] == ["api", "web"]
    with pytest.raises(AppError) as err:
        list_objects(state, "Gadget")
    assert err.value.code == "invalid"
    with pytest.raises(AppError) as err:
        list_objects(state, "Deployment", "db")
    assert err.value.code == "not_found"


def test_a_service_the_load_balancer_refuses_stores_nothing_of_the_batch() -> None:
    state = _state()
    web = Service(
        meta=ObjectMeta(name="web"), selector={"app": "web"}, ports=(ServicePort(80, "80"),)
    )
    asyncio.run(apply_objects(state, [web], 10.0))
    other = replace(web, meta=ObjectMeta(name="other"))
    seen: list[tuple[list[str], list[str]]] = []

    def admit(new: Sequence[Service], stored: Sequence[Service]) -> list[str]:
        seen.append(([s.meta.name for s in new], [s.meta.name for s in stored]))
        return ["service/other: spec.ports[0].port: 127.0.0.1:80 is already used by service/web"]

    with pytest.raises(AppError) as err:
        asyncio.run(apply_objects(state, [_dep(), other], 11.0, admit_services=admit))

    assert err.value.code == "invalid" and "service/web" in err.value.message
    assert seen == [(["other"], ["web"])]
    assert state.get("Service", "other") is None and state.get("Deployment", "web") is None


def _ledger(tag: str) -> tuple[ManagedFieldsEntry, ...]:
    return (ManagedFieldsEntry(tag, "Update", "apps/v1", 1.0, "{}"),)


def _tagger(tag: str) -> FieldTracker:
    def track(existing: StoredObject | None, planned: StoredObject) -> StoredObject:
        return replace(planned, meta=replace(planned.meta, managed_fields=_ledger(tag)))

    return track


def test_a_field_tracker_sees_each_write_and_may_refuse_it() -> None:
    state = _state()
    seen: list[tuple[bool, str]] = []

    def track(existing: StoredObject | None, planned: StoredObject) -> StoredObject:
        seen.append((existing is None, planned.meta.name))
        return replace(planned, meta=replace(planned.meta, managed_fields=_ledger("a")))

    asyncio.run(apply_objects(state, [_dep()], 0.0, track=track))
    stored = state.get("Deployment", "web")
    assert seen == [(True, "web")] and stored is not None
    assert stored.meta.managed_fields == _ledger("a")
    # An unchanged object is written when only its managers change (no new generation).
    applied = asyncio.run(apply_objects(state, [_dep()], 0.0, track=_tagger("b")))
    after = state.get("Deployment", "web")
    assert applied[0].action == "unchanged" and after is not None
    assert after.meta.managed_fields == _ledger("b")
    assert after.meta.generation == stored.meta.generation
    assert after.meta.resource_version > stored.meta.resource_version
    # A configured object keeps its ledger when no tracker is given (a controller's write).
    asyncio.run(apply_objects(state, [_dep(image="nginx:2")], 0.0))
    configured = state.get("Deployment", "web")
    assert configured is not None and configured.meta.managed_fields == _ledger("b")

    def refuse(existing: StoredObject | None, planned: StoredObject) -> StoredObject:
        raise AppError("invalid", "no")

    with pytest.raises(AppError):
        asyncio.run(apply_objects(state, [_dep(image="nginx:3")], 0.0, track=refuse))
    with pytest.raises(AppError):
        asyncio.run(scale_deployment(state, "web", 5, track=refuse))
    unchanged = state.get("Deployment", "web")
    assert unchanged == configured


def test_scale_records_its_manager_even_when_the_count_is_the_same() -> None:
    state = _state()
    asyncio.run(apply_objects(state, [_dep()], 0.0))
    scaled = asyncio.run(scale_deployment(state, "web", 2, track=_tagger("s")))
    assert scaled.meta.managed_fields == _ledger("s") and scaled.replicas == 2
