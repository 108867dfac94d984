"""Each owner's pod counts kept by a listener (master/controllers/owner_counts.py) equal the
counts from scratch after any sequence of changes, and the deployment controller's status
from them (deployment.steady_status) is the one its full reconcile would set."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.controllers.actions import SetDeploymentStatus
from master.controllers.deployment import reconcile_deployment, steady_status
from master.controllers.naming import template_hash
from master.controllers.owner_counts import OwnerCounts, PodCounts
from master.model import (
    Container,
    ContainerStatus,
    Deployment,
    DeploymentStrategy,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    PodTemplate,
)
from master.state import ClusterState
from master.store import MemoryStore

OWNERS = ("web", "api", "")


def _template(image: str) -> PodTemplate:
    return PodTemplate(
        labels={"app": "web"},
        spec=PodSpec(containers=(Container(name="c", image=image),)),
    )


TEMPLATES = (_template("nginx:1"), _template("nginx:2"))
HASHES = tuple(template_hash(t) for t in TEMPLATES)


def _status(rng: random.Random) -> PodStatus:
    reason = rng.choice(["", "", "CrashLoopBackOff", "ErrImagePull", "Completed"])
    statuses = (
        ContainerStatus(name="c", ready=False, reason=reason, message=rng.choice(["", "boom"])),
    )
    ready = not reason and rng.random() < 0.6
    return PodStatus(
        phase=PodPhase.RUNNING if ready else PodPhase.PENDING,
        ready=ready,
        container_statuses=statuses if reason else (),
    )


def _step(rng: random.Random, state: ClusterState) -> None:
    pods = state.pods()
    choice = rng.random()
    if choice < 0.3 or not pods:
        hash_ = rng.choice(HASHES)
        state.put(
            Pod(
                meta=ObjectMeta(
                    name=f"p{rng.randrange(50)}", namespace=rng.choice(["default", "b"])
                ),
                spec=TEMPLATES[HASHES.index(hash_)].spec,
                owner=rng.choice(OWNERS),
                template_hash=hash_,
            )
        )
    elif choice < 0.65:
        pod = rng.choice(pods)
        state.put(replace(pod, status=_status(rng)))
    elif choice < 0.8:
        pod = rng.choice(pods)
        state.put(replace(pod, deletion_requested_at=rng.choice([0.0, 3.0])))
    elif choice < 0.9:
        pod = rng.choice(pods)
        state.put(replace(pod, owner=rng.choice(OWNERS), template_hash=rng.choice(HASHES)))
    else:
        pod = rng.choice(pods)
        state.remove("Pod", pod.meta.name, pod.meta.namespace)


@pytest.mark.parametrize("seed", range(20))
def test_the_counts_equal_the_counts_from_scratch_and_the_status_the_full_reconcile(
    seed: int,
) -> None:
    rng = random.Random(seed)
    state = ClusterState(MemoryStore(), FakeClock())
    for _ in range(25):
        _step(rng, state)
    counts = OwnerCounts(state.pods())
    state.subscribe(counts.on_change)
    steady_seen = 0
    for i in range(400):
        _step(rng, state)
        if i % 5:
            continue
        for ns in ("default", "b"):
            for owner in ("web", "api"):
                pods = state.pods_of_owner(owner, ns)
                kept = counts.counts(ns, owner)
                assert kept == PodCounts.of(pods)
                for template in TEMPLATES:
                    same = kept.live[template_hash(template)]
                    for replicas in {len(pods), same, rng.randrange(6)}:
                        dep = Deployment(
                            meta=ObjectMeta(name=owner, namespace=ns, generation=3),
                            replicas=max(0, replicas),
                            selector={"app": "web"},
                            template=template,
                            strategy=rng.choice(list(DeploymentStrategy)),
                        )
                        steady = steady_status(dep, kept)
                        if steady is None:
                            continue
                        steady_seen += 1
                        actions = reconcile_deployment(dep, pods, lambda: "xxxxx")
                        assert actions == [SetDeploymentStatus(owner, steady)]
    assert steady_seen > 20  # the fast path was exercised, not only skipped


def test_a_steady_deployment_needs_no_pods_but_a_missing_replica_does() -> None:
    pods = [
        Pod(
            meta=ObjectMeta(name=f"w{i}"),
            spec=TEMPLATES[0].spec,
            owner="web",
            template_hash=HASHES[0],
            status=PodStatus(phase=PodPhase.RUNNING, ready=i < 2),
        )
        for i in range(3)
    ]
    dep = Deployment(
        meta=ObjectMeta(name="web"), replicas=3, selector={"app": "web"}, template=TEMPLATES[0]
    )
    steady = steady_status(dep, PodCounts.of(pods))
    assert steady is not None
    assert (steady.replicas, steady.ready_replicas, steady.updated_replicas) == (3, 2, 3)
    assert steady_status(replace(dep, replicas=4), PodCounts.of(pods)) is None
    assert steady_status(replace(dep, template=TEMPLATES[1]), PodCounts.of(pods)) is None
