"""Namespaces (issue 11 point 1): the apply rules (master/app/namespaces.py), the namespace
controller's decisions on a fake clock (master/controllers/namespaces.py) and through the
ControllerManager, manifests' -n rules, and HAProxy names that keep namespaces apart."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.app.errors import AppError
from master.app.namespaces import check_namespaces, mark_terminating
from master.controllers.manager import ControllerManager
from master.controllers.namespaces import (
    STUCK_AFTER,
    CreateDefaultAccount,
    DeleteObject,
    NamespaceContents,
    RemoveNamespace,
    ReportStuck,
    StopPod,
    reconcile_namespace,
)
from master.controllers.nodes import LeaseTable
from master.lb.slots import backend_name, frontend_name
from master.manifest import ManifestError, parse_manifests
from master.model import (
    ConfigMap,
    Container,
    Namespace,
    ObjectMeta,
    Pod,
    PodSpec,
    ServiceAccount,
    Volume,
    lb_name,
)
from master.state import ClusterState
from master.store.memory import MemoryStore


def _ns(name: str, phase: str = "Active", since: float = 0.0) -> Namespace:
    return Namespace(ObjectMeta(name), phase=phase, deletion_requested_at=since)


def _pod(name: str, ns: str = "team-a", claim: str = "", stopping: float = 0.0) -> Pod:
    volumes = (Volume("data", "persistentVolumeClaim", claim_name=claim),) if claim else ()
    spec = PodSpec((Container("c", "nginx:latest"),), volumes=volumes)
    return Pod(ObjectMeta(name, namespace=ns), spec, deletion_requested_at=stopping)


# -- the controller's decisions -----------------------------------------------------------


def test_an_active_namespace_gets_its_default_service_account_once() -> None:
    assert reconcile_namespace(_ns("team-a"), NamespaceContents(has_default_account=False), 0) == [
        CreateDefaultAccount("team-a")
    ]
    assert reconcile_namespace(_ns("team-a"), NamespaceContents(), 0) == []


def test_terminating_deletes_owners_first_stops_pods_and_keeps_claims_in_use() -> None:
    contents = NamespaceContents(
        pods=(_pod("db-0", claim="data-db-0"), _pod("web-1", stopping=5.0)),
        others=(
            ("Service", "web"),
            ("PersistentVolumeClaim", "data-db-0"),
            ("PersistentVolumeClaim", "spare"),
            ("StatefulSet", "db"),
            ("Deployment", "web"),
        ),
    )

    actions = reconcile_namespace(_ns("team-a", "Terminating", 10.0), contents, 11.0)

    assert actions == [
        DeleteObject("Deployment", "web"),
        DeleteObject("StatefulSet", "db"),
        DeleteObject("PersistentVolumeClaim", "spare"),
        DeleteObject("Service", "web"),
        StopPod("db-0"),
    ]


def test_the_namespace_goes_once_no_pod_is_left() -> None:
    contents = NamespaceContents(others=(("PersistentVolumeClaim", "data"), ("Event", "e1")))

    actions = reconcile_namespace(_ns("team-a", "Terminating", 10.0), contents, 12.0)

    assert actions == [
        DeleteObject("Event", "e1"),
        DeleteObject("PersistentVolumeClaim", "data"),
        RemoveNamespace("team-a"),
    ]


def test_pods_still_there_after_a_minute_are_named_once() -> None:
    terminating = _ns("team-a", "Terminating", 100.0)
    contents = NamespaceContents(pods=(_pod("web-1", stopping=101.0),))
    early = 100.0 + STUCK_AFTER - 1

    assert reconcile_namespace(terminating, contents, early) == []
    (stuck,) = reconcile_namespace(terminating, contents, 100.0 + STUCK_AFTER)
    assert isinstance(stuck, ReportStuck) and "web-1" in stuck.message
    assert reconcile_namespace(terminating, contents, 500.0, stuck_reported=True) == []


# -- the apply rules ------------------------------------------------------------------------


def _lookup(*stored: Namespace):  # type: ignore[no-untyped-def]
    by_name = {n.meta.name: n for n in stored}
    return lambda kind, name, ns: by_name.get(name) if kind == "Namespace" else None


def test_an_object_goes_only_into_an_existing_or_same_apply_namespace() -> None:
    cm = ConfigMap(ObjectMeta("cfg", namespace="team-a"), {})

    check_namespaces([cm], _lookup(_ns("team-a")))
    check_namespaces([_ns("team-a"), cm], _lookup())
    check_namespaces([replace(cm, meta=ObjectMeta("cfg"))], _lookup())  # default: always
    with pytest.raises(AppError) as missing:
        check_namespaces([cm], _lookup(), ["app.yaml: document 2"])
    assert missing.value.code == "not_found"
    assert missing.value.message.startswith(
        'app.yaml: document 2: metadata.namespace: namespaces "team-a" not found'
    )
    with pytest.raises(AppError, match="being terminated") as closing:
        check_namespaces([cm], _lookup(_ns("team-a", "Terminating", 1.0)))
    assert closing.value.code == "failed_precondition"


def test_deleting_marks_terminating_and_default_cannot_be_deleted() -> None:
    async def scenario() -> ClusterState:
        state = ClusterState(MemoryStore(), FakeClock())
        await state.load()
        await state.commit(lambda: state.put(_ns("team-a")))
        await state.commit(lambda: mark_terminating(state, "team-a", 42.0))
        return state

    state = asyncio.run(scenario())

    ns = state.get("Namespace", "team-a")
    assert isinstance(ns, Namespace) and (ns.phase, ns.deletion_requested_at) == (
        "Terminating",
        42.0,
    )
    with pytest.raises(AppError, match="may not be deleted"):
        mark_terminating(state, "default", 1.0)


# -- the controller at work (ControllerManager over a ClusterState, fake clock) --------------


def test_the_manager_empties_a_terminating_namespace_and_leaves_the_others() -> None:
    async def scenario() -> ClusterState:
        clock = FakeClock()
        state = ClusterState(MemoryStore(), clock)
        await state.load()

        def seed() -> None:
            for name in ("team-a", "team-b"):
                state.put(_ns(name))
                state.put(ConfigMap(ObjectMeta("cfg", namespace=name), {}))
                state.put(_pod("web-1", name))  # never scheduled: nothing runs it

        await state.commit(seed)
        manager = ControllerManager(state, clock, LeaseTable())
        manager.run_pass()  # default ServiceAccounts
        await state.commit(lambda: mark_terminating(state, "team-a", clock.now()))
        manager.run_pass()  # everything in team-a goes, the pod at once (no node)
        manager.run_pass()  # then the namespace
        return state

    state = asyncio.run(scenario())

    assert state.get("Namespace", "team-a") is None
    assert state.objects("ConfigMap", "team-a") == [] and state.pods("team-a") == []
    assert state.get("ConfigMap", "cfg", "team-b") is not None
    assert [p.meta.name for p in state.pods("team-b")] == ["web-1"]
    assert isinstance(state.get("ServiceAccount", "default", "team-b"), ServiceAccount)


# -- manifests and names --------------------------------------------------------------------

_CM = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg%s}\n"


def test_minus_n_fills_objects_without_a_namespace_and_refuses_a_different_one() -> None:
    (plain,) = parse_manifests([("a.yaml", _CM % b"")], "team-a").objects
    (own,) = parse_manifests([("a.yaml", _CM % b", namespace: team-b")]).objects

    assert plain.meta.namespace == "team-a" and own.meta.namespace == "team-b"
    assert parse_manifests([("a.yaml", _CM % b"")]).objects[0].meta.namespace == "default"
    with pytest.raises(ManifestError, match=r'a.yaml: document 1: metadata.namespace: .*"team-b"'):
        parse_manifests([("a.yaml", _CM % b", namespace: team-b")], "team-a")


def test_same_name_in_two_namespaces_of_one_apply_is_not_a_duplicate() -> None:
    text = (_CM % b", namespace: team-a") + b"---\n" + (_CM % b", namespace: team-b")

    parsed = parse_manifests([("a.yaml", text)])

    assert [o.meta.namespace for o in parsed.objects] == ["team-a", "team-b"]
    assert parsed.sources == ("a.yaml: document 1", "a.yaml: document 2")


def test_haproxy_names_keep_namespaces_apart_and_default_names_unchanged() -> None:
    from master.model import Service, ServicePort

    def svc(name: str, ns: str) -> Service:
        return Service(ObjectMeta(name, namespace=ns), {"app": "x"}, (ServicePort(80, "80"),))

    assert lb_name(svc("web", "default")) == "web"
    assert backend_name(lb_name(svc("web", "default")), "http") == "be_web.http"
    assert backend_name(lb_name(svc("web", "team-a")), "http") == "be_team-a_web.http"
    assert frontend_name(lb_name(svc("web", "team-a")), "") == "fe_team-a_web"
    # Service "team-a" with port "web" in default is not Service "web" of team-a.
    assert backend_name("team-a", "web") != backend_name(lb_name(svc("web", "team-a")), "")
