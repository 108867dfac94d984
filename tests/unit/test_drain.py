"""plan_drain: what one drain step evicts, what waits for its deployment, what cannot move."""

from __future__ import annotations

from dataclasses import replace

from master.app.drain import DrainPlan, Waiting, plan_drain
from master.model import (
    Container,
    Deployment,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    PodTemplate,
    RollingUpdate,
    Volume,
)

SPEC = PodSpec(containers=(Container(name="web", image="nginx:1"),))


def _dep(name: str, replicas: int, unavailable: str = "25%") -> Deployment:
    return Deployment(
        meta=ObjectMeta(name=name),
        replicas=replicas,
        selector={"app": name},
        template=PodTemplate(labels={"app": name}, spec=SPEC),
        rolling_update=RollingUpdate("25%", unavailable),
    )


def _pod(name: str, owner: str, node: str, ready: bool = True, stopping: bool = False) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name),
        spec=SPEC,
        owner=owner,
        node_name=node,
        status=PodStatus(ready=ready),
        deletion_requested_at=5.0 if stopping else 0.0,
    )


def _deps(*deps: Deployment) -> dict[str, Deployment]:
    return {d.meta.name: d for d in deps}


def test_an_empty_node_is_drained_at_once() -> None:
    plan = plan_drain("n1", [_pod("a-1", "a", "n2")], _deps(_dep("a", 1)))

    assert plan == DrainPlan((), (), (), ())
    assert plan.done


def test_one_pod_of_a_deployment_goes_at_a_time_while_the_rest_serve() -> None:
    # 3 replicas, 25% unavailable rounds down to 0: the budget is still 1.
    pods = [_pod(f"a-{i}", "a", "n1") for i in range(3)]

    plan = plan_drain("n1", pods, _deps(_dep("a", 3)))

    assert plan.evict == ("a-0",)
    assert [w.pod for w in plan.waiting] == ["a-1", "a-2"]
    assert "deployment a has 1 of 3 replicas not ready" in plan.waiting[0].reason


def test_the_next_pod_waits_until_the_replacement_is_ready_elsewhere() -> None:
    dep = _dep("a", 3)
    stopping = _pod("a-0", "a", "n1", stopping=True)
    replacement = _pod("a-3", "a", "n2", ready=False)
    rest = [_pod("a-1", "a", "n1"), _pod("a-2", "a", "n1")]

    before = plan_drain("n1", [stopping, replacement, *rest], _deps(dep))
    ready = plan_drain("n1", [stopping, _pod("a-3", "a", "n2"), *rest], _deps(dep))

    assert before.evict == () and before.terminating == ("a-0",)
    assert ready.evict == ("a-1",)


def test_a_larger_budget_evicts_several_at_once_and_deployments_count_apart() -> None:
    pods = [_pod(f"a-{i}", "a", "n1") for i in range(4)] + [_pod("b-0", "b", "n1")]

    plan = plan_drain("n1", pods, _deps(_dep("a", 4, unavailable="50%"), _dep("b", 1)))

    assert plan.evict == ("a-0", "a-1", "b-0")
    assert [w.pod for w in plan.waiting] == ["a-2", "a-3"]


def test_a_pod_that_is_not_ready_goes_without_spending_the_budget() -> None:
    pods = [_pod("a-0", "a", "n1", ready=False), _pod("a-1", "a", "n1"), _pod("a-2", "a", "n2")]

    plan = plan_drain("n1", pods, _deps(_dep("a", 3)))

    # a-0 is already missing; evicting a-1 too would leave 1 of 3: it waits.
    assert plan.evict == ("a-0",)
    assert [w.pod for w in plan.waiting] == ["a-1"]


def test_a_pod_without_a_deployment_cannot_move() -> None:
    plan = plan_drain("n1", [_pod("lonely", "gone", "n1")], _deps())

    assert plan.blocked == (
        Waiting("lonely", "not managed by a Deployment: evicting it would lose it for good"),
    )
    assert not plan.done


def test_a_pod_whose_claim_lives_on_the_node_cannot_move() -> None:
    spec = PodSpec(
        containers=SPEC.containers,
        volumes=(Volume("data", "persistentVolumeClaim", claim_name="data-db-0"),),
    )
    pod = replace(_pod("db-0", "StatefulSet/db", "n1"), spec=spec)

    plan = plan_drain("n1", [pod], _deps())

    assert [w.pod for w in plan.blocked] == ["db-0"]
    assert "data-db-0 keeps its data on this node" in plan.blocked[0].reason
