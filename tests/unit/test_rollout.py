"""Rollout history numbering, rollback targets, stall detection and `rollout status` lines."""

from __future__ import annotations

from dataclasses import replace

import pytest

from master.cli.client import CliError
from master.cli.rollout import rollout_message
from master.controllers.deployment import stalled_reason
from master.controllers.revisions import RollbackError, record_revision, rollback_template
from master.model import (
    Container,
    ContainerState,
    ContainerStatus,
    Deployment,
    DeploymentRevision,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    PodTemplate,
)


def _template(image: str) -> PodTemplate:
    return PodTemplate(labels={"app": "web"}, spec=PodSpec((Container("web", image),)))


def test_each_new_template_gets_the_next_revision_and_reapplying_changes_nothing() -> None:
    h1 = record_revision((), _template("a"), 1.0)
    h2 = record_revision(h1, _template("b"), 2.0)
    same = record_revision(h2, _template("b"), 3.0)

    assert [r.revision for r in h2] == [1, 2]
    assert same == h2


def test_going_back_to_an_old_template_moves_it_to_the_next_number() -> None:
    history = record_revision(record_revision((), _template("a"), 1.0), _template("b"), 2.0)

    back = record_revision(history, _template("a"), 3.0, "rollout undo")

    assert [(r.revision, r.template.spec.containers[0].image) for r in back] == [(2, "b"), (3, "a")]
    assert back[-1].change_cause == "rollout undo"


def test_history_keeps_at_most_the_limit_of_old_revisions() -> None:
    history: tuple[DeploymentRevision, ...] = ()
    for i in range(15):
        history = record_revision(history, _template(f"img:{i}"), float(i), limit=10)

    assert len(history) == 11
    assert history[-1].revision == 15 and history[0].revision == 5


def _deployment(history_images: list[str]) -> Deployment:
    history: tuple[DeploymentRevision, ...] = ()
    for i, image in enumerate(history_images):
        history = record_revision(history, _template(image), float(i))
    return Deployment(
        meta=ObjectMeta(name="web"),
        replicas=1,
        selector={"app": "web"},
        template=_template(history_images[-1]),
        history=history,
    )


def test_rollback_goes_to_the_previous_or_a_named_revision() -> None:
    dep = _deployment(["a", "b", "c"])

    assert rollback_template(dep).spec.containers[0].image == "b"
    assert rollback_template(dep, 1).spec.containers[0].image == "a"
    with pytest.raises(RollbackError, match="has no revision 9"):
        rollback_template(dep, 9)
    with pytest.raises(RollbackError, match="no previous revision"):
        rollback_template(_deployment(["a"]))


def test_a_new_pod_that_cannot_pull_its_image_stalls_the_rollout() -> None:
    waiting = ContainerStatus(
        "web", ContainerState.WAITING, "ImagePullBackOff", "image nope:1 not found"
    )
    pod = Pod(
        meta=ObjectMeta(name="web-x"),
        spec=_template("nope:1").spec,
        status=PodStatus(container_statuses=(waiting,)),
    )

    assert stalled_reason([pod]) == (
        "pod web-x: container web: ImagePullBackOff: image nope:1 not found"
    )
    ok = replace(pod, status=PodStatus())
    assert stalled_reason([ok]) == ""


def _dep_json(**status: object) -> dict[str, object]:
    return {
        "metadata": {"name": "web", "generation": 2},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 2, **status},
    }


def test_rollout_status_lines_follow_kubectl() -> None:
    assert rollout_message(_dep_json(updatedReplicas=1, replicas=4))[0] == (
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
        "updated..."
    )
    assert (
        "2 old replicas are pending termination"
        in rollout_message(_dep_json(updatedReplicas=3, replicas=5))[0]
    )
    assert (
        "2 of 3 updated replicas are available"
        in rollout_message(_dep_json(updatedReplicas=3, replicas=3, availableReplicas=2))[0]
    )
    assert rollout_message(_dep_json(updatedReplicas=3, replicas=3, availableReplicas=3)) == (
        'deployment "web" successfully rolled out',
        True,
    )


def test_rollout_status_fails_with_the_stall_reason() -> None:
    stalled = _dep_json(
        conditions=[{"type": "Progressing", "status": "False", "message": "pod x: ErrImagePull"}]
    )

    with pytest.raises(CliError, match="rollout is stalled: pod x: ErrImagePull"):
        rollout_message(stalled)
