"""reconcile_statefulset: stable names, a claim per ordinal, order, scale-down and updates."""

from __future__ import annotations

from dataclasses import replace

from master.controllers.actions import CreatePod, DeletePod
from master.controllers.naming import template_hash
from master.controllers.statefulset import (
    CreateClaim,
    DeleteClaim,
    SetClaimOwner,
    SetStatefulSetStatus,
    StatefulSetAction,
    orphaned_claims,
    reconcile_statefulset,
)
from master.model import (
    ClaimTemplate,
    Container,
    ObjectMeta,
    PersistentVolumeClaim,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    PodTemplate,
    StatefulSet,
    Volume,
    VolumeMount,
)

CONTAINER = Container("db", "redis:7", volume_mounts=(VolumeMount("data", "/data"),))


def _sts(replicas: int = 3, **changes: object) -> StatefulSet:
    spec = PodSpec((CONTAINER,), volumes=(Volume("data", "persistentVolumeClaim"),))
    sts = StatefulSet(
        meta=ObjectMeta(name="db", uid="u1"),
        replicas=replicas,
        selector={"app": "db"},
        template=PodTemplate({"app": "db"}, spec),
        service_name="db",
        claim_templates=(ClaimTemplate("data", ("ReadWriteOnce",), 1 << 20),),
    )
    return replace(sts, **changes)  # type: ignore[arg-type]


def _pod(sts: StatefulSet, i: int, up: bool = True, stale: bool = False) -> Pod:
    hash_ = "old" if stale else template_hash(sts.template)
    status = PodStatus(phase=PodPhase.RUNNING, ready=True) if up else PodStatus()
    return Pod(ObjectMeta(name=f"db-{i}"), sts.template.spec, sts.owner, hash_, "n1", status=status)


def _claims(sts: StatefulSet, n: int) -> dict[str, PersistentVolumeClaim]:
    return {
        f"data-db-{i}": PersistentVolumeClaim(ObjectMeta(f"data-db-{i}"), ("ReadWriteOnce",), 1)
        for i in range(n)
    }


def _kinds(actions: list[StatefulSetAction]) -> list[str]:
    out = []
    for a in actions:
        if isinstance(a, CreatePod):
            out.append(f"create {a.pod.meta.name}")
        elif isinstance(a, DeletePod):
            out.append(f"delete {a.name}")
        elif isinstance(a, CreateClaim):
            out.append(f"claim {a.claim.meta.name}")
        elif isinstance(a, DeleteClaim):
            out.append(f"unclaim {a.name}")
    return out


def test_ordered_ready_creates_claims_and_only_the_first_pod() -> None:
    sts = _sts()

    actions = reconcile_statefulset(sts, [], {}, 1.0)

    assert _kinds(actions) == [
        "claim data-db-0",
        "claim data-db-1",
        "claim data-db-2",
        "create db-0",
    ]
    pod = next(a.pod for a in actions if isinstance(a, CreatePod))
    assert pod.spec.volumes[0].claim_name == "data-db-0"
    assert pod.meta.labels["statefulset.kubernetes.io/pod-name"] == "db-0"
    assert pod.owner == "StatefulSet/db"


def test_the_next_ordinal_waits_until_the_previous_is_ready() -> None:
    sts = _sts()

    waiting = reconcile_statefulset(sts, [_pod(sts, 0, up=False)], _claims(sts, 3), 1.0)
    ready = reconcile_statefulset(sts, [_pod(sts, 0)], _claims(sts, 3), 1.0)

    assert _kinds(waiting) == []
    assert _kinds(ready) == ["create db-1"]


def test_parallel_creates_every_missing_pod_at_once() -> None:
    sts = _sts(pod_management_policy="Parallel")

    actions = reconcile_statefulset(sts, [_pod(sts, 1, up=False)], _claims(sts, 3), 1.0)

    assert _kinds(actions) == ["create db-0", "create db-2"]


def test_scale_down_removes_the_highest_ordinal_first_one_at_a_time_keeping_claims() -> None:
    sts = _sts(replicas=1)
    pods = [_pod(sts, i) for i in range(3)]

    first = reconcile_statefulset(sts, pods, _claims(sts, 3), 1.0)
    pods[2] = replace(pods[2], deletion_requested_at=2.0)
    second = reconcile_statefulset(sts, pods, _claims(sts, 3), 2.0)

    assert _kinds(first) == ["delete db-2"]
    assert _kinds(second) == []  # db-1 waits until db-2 is gone


def test_when_scaled_delete_removes_the_claims_of_ordinals_gone() -> None:
    sts = _sts(replicas=1, when_scaled="Delete")

    actions = reconcile_statefulset(sts, [_pod(sts, 0)], _claims(sts, 3), 1.0)

    assert _kinds(actions) == ["unclaim data-db-1", "unclaim data-db-2"]


def test_rolling_update_replaces_the_highest_stale_ordinal_above_the_partition() -> None:
    sts = _sts(partition=1)
    pods = [_pod(sts, i, stale=True) for i in range(3)]

    first = reconcile_statefulset(sts, pods, _claims(sts, 3), 1.0)
    pods[2] = _pod(sts, 2)
    second = reconcile_statefulset(sts, pods, _claims(sts, 3), 1.0)
    pods[1] = _pod(sts, 1)
    done = reconcile_statefulset(sts, pods, _claims(sts, 3), 1.0)

    assert _kinds(first) == ["delete db-2"]
    assert _kinds(second) == ["delete db-1"]
    assert _kinds(done) == []  # db-0 is below the partition and keeps its template
    status = next(a.status for a in done if isinstance(a, SetStatefulSetStatus))
    assert (status.replicas, status.ready_replicas, status.updated_replicas) == (3, 3, 2)


def test_on_delete_never_replaces_a_running_pod() -> None:
    sts = _sts(update_strategy="OnDelete")
    pods = [_pod(sts, i, stale=True) for i in range(3)]

    assert _kinds(reconcile_statefulset(sts, pods, _claims(sts, 3), 1.0)) == []


def test_when_deleted_delete_makes_the_set_own_its_claims_and_follows_policy_changes() -> None:
    sts = _sts(1, when_deleted="Delete")

    created = reconcile_statefulset(sts, [], {}, 1.0)
    (claim,) = [a.claim for a in created if isinstance(a, CreateClaim)]
    assert claim.owner == "StatefulSet/db"

    # An existing claim is adopted; a set turned back to Retain gives its claims up.
    owned = [
        a.claim
        for a in reconcile_statefulset(sts, [_pod(sts, 0)], _claims(sts, 1), 2.0)
        if isinstance(a, SetClaimOwner)
    ]
    assert [(c.meta.name, c.owner) for c in owned] == [("data-db-0", "StatefulSet/db")]
    freed = reconcile_statefulset(_sts(1), [_pod(sts, 0)], {"data-db-0": owned[0]}, 3.0)
    assert [a.claim.owner for a in freed if isinstance(a, SetClaimOwner)] == [""]


def test_a_deleted_sets_owned_claims_go_once_no_pod_uses_them() -> None:
    sts = _sts(2, when_deleted="Delete")
    claims = [replace(c, owner="StatefulSet/db") for c in _claims(sts, 2).values()]
    claims.append(PersistentVolumeClaim(ObjectMeta("data-other-0"), ("ReadWriteOnce",), 1))
    still = replace(
        _pod(sts, 1),
        spec=replace(
            sts.template.spec,
            volumes=(Volume("data", "persistentVolumeClaim", claim_name="data-db-1"),),
        ),
    )

    assert orphaned_claims("db", claims, [still]) == ["data-db-0"]
    assert orphaned_claims("db", claims, []) == ["data-db-0", "data-db-1"]
