"""Assignments reuse the spec message of pods that share their spec (convert._assigned_spec).

The reuse is only a cost: every assignment must be the message a fresh conversion makes, a
pod whose environment, files, Service variables or stop grace differ gets its own, and an
assignment changed after it was built changes no other.
"""

from __future__ import annotations

from master.api.convert import assignment_to_proto, pod_spec_to_proto
from master.app.podenv import ResolvedEnv, ResolvedVar
from master.app.podvolumes import ResolvedFiles
from master.model import Container, ContainerPort, ObjectMeta, Pod, PodSpec, Volume

CONTAINER = Container(name="c", image="nginx:latest", ports=(ContainerPort(80),))
SPEC = PodSpec(containers=(CONTAINER, Container(name="d", image="busybox")))


def _pod(name: str, spec: PodSpec = SPEC, deleting: float = 0.0, grace: int = -1) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name),
        spec=spec,
        node_name="n1",
        deletion_requested_at=deleting,
        deletion_grace_seconds=grace,
    )


def _env_naming_the_pod(pod: Pod, container: Container) -> ResolvedEnv:
    # A fieldRef to metadata.name: each pod's own value.
    return ResolvedEnv((ResolvedVar("POD", f"{pod.meta.name}/{container.name}", True),))


def _services(pod: Pod) -> tuple[tuple[str, str], ...]:
    return (("WEB_SERVICE_HOST", "10.0.0.1"),)


def test_every_assignment_is_what_a_fresh_conversion_makes() -> None:
    pods = [_pod(f"web-{i}") for i in range(3)] + [_pod("stopping", deleting=1.0, grace=5)]

    for _ in range(2):  # the second round from what was remembered
        for pod in pods:
            got = assignment_to_proto(pod, False, _env_naming_the_pod, services=_services)
            fresh = pod_spec_to_proto(pod, _env_naming_the_pod, services=_services)
            assert got.spec == fresh

    env = [v.value for v in got.spec.containers[1].env]
    assert env == ["stopping/d"]
    assert got.spec.termination_grace_period_seconds == 5


def test_pods_differing_only_in_what_the_resolvers_say_get_their_own_spec() -> None:
    volume = Volume(name="cfg", source="configMap")
    spec = PodSpec(containers=(CONTAINER,), volumes=(volume,))
    files = {"a": ResolvedFiles(), "b": ResolvedFiles(claim_bytes=7)}

    a = assignment_to_proto(_pod("a", spec), False, files=lambda p, v: files[p.meta.name])
    b = assignment_to_proto(_pod("b", spec), False, files=lambda p, v: files[p.meta.name])

    assert a.spec.volumes[0].claim_bytes == 0
    assert b.spec.volumes[0].claim_bytes == 7


def test_an_assignment_changed_after_it_was_built_changes_no_other() -> None:
    first = assignment_to_proto(_pod("web-1"), False)
    first.spec.containers[0].image = "changed"

    second = assignment_to_proto(_pod("web-2"), False)

    assert second.spec.containers[0].image == "nginx:latest"
