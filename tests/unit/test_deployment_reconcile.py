"""reconcile_deployment: scale up, scale down, template change (rolling and Recreate)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

from master.controllers.actions import CreatePod, DeletePod, SetDeploymentStatus
from master.controllers.deployment import (
    BURST_PODS_PER_NODE,
    BURST_REPLICAS,
    TEMPLATE_HASH_LABEL,
    burst_replicas,
    deployment_actions,
    reconcile_deployment,
)
from master.controllers.naming import template_hash
from master.model import (
    Container,
    Deployment,
    DeploymentStrategy,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    PodTemplate,
    RollingUpdate,
)


def _deployment(
    replicas: int = 3,
    image: str = "nginx:1",
    strategy: str = "RollingUpdate",
    surge: str = "25%",
    unavailable: str = "25%",
) -> Deployment:
    template = PodTemplate(
        labels={"app": "web"}, spec=PodSpec(containers=(Container(name="web", image=image),))
    )
    return Deployment(
        meta=ObjectMeta(name="web"),
        replicas=replicas,
        selector={"app": "web"},
        template=template,
        strategy=DeploymentStrategy(strategy),
        rolling_update=RollingUpdate(surge, unavailable),
    )


_counter = itertools.count()


def _suffix() -> str:
    return f"s{next(_counter):04d}"


def _pods_for(dep: Deployment, n: int, ready: bool = True, node: str = "n1") -> list[Pod]:
    h = template_hash(dep.template)
    return [
        Pod(
            meta=ObjectMeta(name=f"web-{h}-{i}", labels={"app": "web"}, created_at=float(i)),
            spec=dep.template.spec,
            owner="web",
            template_hash=h,
            node_name=node,
            status=PodStatus(phase=PodPhase.RUNNING if ready else PodPhase.PENDING, ready=ready),
        )
        for i in range(n)
    ]


def _creates(actions: Sequence[object]) -> list[CreatePod]:
    return [a for a in actions if isinstance(a, CreatePod)]


def _deletes(actions: Sequence[object]) -> list[DeletePod]:
    return [a for a in actions if isinstance(a, DeletePod)]


def test_creates_all_replicas_from_nothing_with_kubernetes_style_names() -> None:
    dep = _deployment(replicas=3)

    actions = reconcile_deployment(dep, [], _suffix)

    creates = _creates(actions)
    assert len(creates) == 3
    h = template_hash(dep.template)
    for c in creates:
        assert c.pod.meta.name.startswith(f"web-{h}-")
        assert c.pod.meta.labels == {"app": "web", "pod-template-hash": h}
        assert c.pod.owner == "web" and c.pod.node_name == ""
        assert c.reason == "SuccessfulCreate"
    assert len({c.pod.meta.name for c in creates}) == 3


def test_scale_up_creates_only_the_missing_pods() -> None:
    dep = _deployment(replicas=5)
    pods = _pods_for(dep, 3)

    actions = reconcile_deployment(dep, pods, _suffix)

    assert len(_creates(actions)) == 2
    assert _deletes(actions) == []


def test_scale_down_deletes_unready_and_newest_first() -> None:
    dep = _deployment(replicas=2)
    pods = _pods_for(dep, 4)
    pods[0] = replace(pods[0], status=PodStatus(phase=PodPhase.PENDING, ready=False))

    actions = reconcile_deployment(dep, pods, _suffix)

    deleted = {d.name for d in _deletes(actions)}
    assert deleted == {pods[0].meta.name, pods[3].meta.name}
    assert _creates(actions) == []


def test_pods_being_deleted_are_not_counted_as_replicas() -> None:
    dep = _deployment(replicas=3)
    pods = _pods_for(dep, 3)
    pods[1] = replace(pods[1], deletion_requested_at=5.0)

    actions = reconcile_deployment(dep, pods, _suffix)

    assert len(_creates(actions)) == 1


def test_steady_state_does_nothing_but_report_status() -> None:
    dep = _deployment(replicas=3)

    actions = reconcile_deployment(dep, _pods_for(dep, 3), _suffix)

    assert len(actions) == 1
    status = actions[0]
    assert isinstance(status, SetDeploymentStatus)
    assert (status.status.replicas, status.status.ready_replicas) == (3, 3)
    assert status.status.updated_replicas == 3


def test_template_change_surges_before_removing_ready_old_pods() -> None:
    old_dep = _deployment(replicas=4, image="nginx:1")
    old_pods = _pods_for(old_dep, 4)
    new_dep = _deployment(replicas=4, image="nginx:2")

    actions = reconcile_deployment(new_dep, old_pods, _suffix)

    # 25% of 4: one extra pod allowed, one pod may be unavailable.
    creates = _creates(actions)
    assert len(creates) == 1
    assert creates[0].pod.template_hash == template_hash(new_dep.template)
    assert len(_deletes(actions)) == 1


def test_rollout_never_drops_below_min_available_while_new_pods_are_not_ready() -> None:
    old_dep = _deployment(replicas=3, image="nginx:1", surge="1", unavailable="0")
    new_dep = _deployment(replicas=3, image="bad:image", surge="1", unavailable="0")
    new_pod = replace(_pods_for(new_dep, 1, ready=False)[0], meta=ObjectMeta(name="new-0"))
    pods = [*_pods_for(old_dep, 3), new_pod]

    actions = reconcile_deployment(new_dep, pods, _suffix)

    assert _deletes(actions) == []
    assert _creates(actions) == []


def test_rollout_completes_when_new_pods_are_ready() -> None:
    old_dep = _deployment(replicas=2, image="nginx:1", surge="1", unavailable="0")
    new_dep = _deployment(replicas=2, image="nginx:2", surge="1", unavailable="0")
    new_pods = [
        replace(p, meta=replace(p.meta, name=f"new-{i}"))
        for i, p in enumerate(_pods_for(new_dep, 2))
    ]
    pods = [*_pods_for(old_dep, 1), *new_pods]

    actions = reconcile_deployment(new_dep, pods, _suffix)

    assert [d.name for d in _deletes(actions)] == [pods[0].meta.name]
    assert _creates(actions) == []


def test_recreate_deletes_old_pods_and_waits_before_creating() -> None:
    old_dep = _deployment(replicas=2, image="nginx:1", strategy="Recreate")
    new_dep = _deployment(replicas=2, image="nginx:2", strategy="Recreate")
    old_pods = _pods_for(old_dep, 2)

    first = reconcile_deployment(new_dep, old_pods, _suffix)
    stopping = [replace(p, deletion_requested_at=1.0) for p in old_pods]
    second = reconcile_deployment(new_dep, stopping, _suffix)
    third = reconcile_deployment(new_dep, [], _suffix)

    assert len(_deletes(first)) == 2 and _creates(first) == []
    assert _creates(second) == [] and _deletes(second) == []
    assert len(_creates(third)) == 2


def test_template_hash_is_stable_and_sensitive() -> None:
    a = _deployment(image="nginx:1").template
    b = _deployment(image="nginx:1").template
    c = _deployment(image="nginx:2").template

    assert template_hash(a) == template_hash(b)
    assert template_hash(a) != template_hash(c)
    assert len(template_hash(a)) == 10


def test_a_large_scale_up_creates_at_most_a_burst_per_pass() -> None:
    burst = BURST_REPLICAS
    dep = _deployment(replicas=2 * burst + 200)

    first = _creates(reconcile_deployment(dep, [], _suffix))
    second = _creates(reconcile_deployment(dep, _pods_for(dep, burst), _suffix))
    last = _creates(reconcile_deployment(dep, _pods_for(dep, 2 * burst), _suffix))

    assert (len(first), len(second), len(last)) == (burst, burst, 200)


def test_the_burst_grows_with_the_cluster_past_its_floor() -> None:
    # A small cluster keeps the floor; 5,000 nodes take a 10,000-pod deployment in one pass.
    assert burst_replicas(3) == BURST_REPLICAS
    assert burst_replicas(BURST_REPLICAS // BURST_PODS_PER_NODE) == BURST_REPLICAS
    assert burst_replicas(5000) == 10_000


def test_a_burst_given_bounds_creations_and_deletions() -> None:
    up = _creates(reconcile_deployment(_deployment(replicas=9000), [], _suffix, burst=7000))
    gone = _deployment(replicas=0)
    down = _deletes(reconcile_deployment(gone, _pods_for(gone, 9000), _suffix, 7000))

    assert (len(up), len(down)) == (7000, 7000)


def test_a_large_scale_down_deletes_at_most_a_burst_per_pass() -> None:
    dep = _deployment(replicas=0)

    deletes = _deletes(reconcile_deployment(dep, _pods_for(dep, BURST_REPLICAS + 7), _suffix))
    assert len(deletes) == BURST_REPLICAS


def test_pods_one_pass_creates_share_one_labels_mapping() -> None:
    dep = _deployment(replicas=3)
    actions = reconcile_deployment(dep, [], _suffix)

    created = [a.pod for a in actions if isinstance(a, CreatePod)]

    assert len(created) == 3
    expected = {"app": "web", TEMPLATE_HASH_LABEL: template_hash(dep.template)}
    assert all(p.meta.labels == expected for p in created)
    assert len({id(p.meta.labels) for p in created}) == 1


def test_pods_the_passes_create_share_one_empty_annotations_mapping() -> None:
    dep = _deployment(replicas=2)
    first = [a.pod for a in reconcile_deployment(dep, [], _suffix) if isinstance(a, CreatePod)]
    more = replace(dep, replicas=4)
    second = [a.pod for a in reconcile_deployment(more, first, _suffix) if isinstance(a, CreatePod)]

    created = first + second

    assert len(created) == 4 and all(p.meta.annotations == {} for p in created)
    assert len({id(p.meta.annotations) for p in created}) == 1


def test_actions_are_made_one_at_a_time_as_they_are_asked_for() -> None:
    """deployment_actions makes each action when it is reached (the manager runs a burst
    in steps: 10,000 creations made in one piece were ~50 ms of the loop). What they are is
    reconcile_deployment's (its list of them), which the tests above pin."""
    drawn = 0

    def counted() -> str:
        nonlocal drawn
        drawn += 1
        return f"d{drawn:04d}"

    dep = _deployment(replicas=10_000)
    actions = deployment_actions(dep, [], counted, burst=10_000)
    first = next(actions)
    assert isinstance(first, CreatePod) and drawn == 1
    assert isinstance(next(actions), CreatePod) and drawn == 2
    rest = list(actions)
    assert drawn == 10_000 and isinstance(rest[-1], SetDeploymentStatus)
