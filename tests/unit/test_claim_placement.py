"""place_pods_with_claims: pods with claims placed one by one, claims binding as they go."""

from __future__ import annotations

from dataclasses import replace

from master.controllers.claim_placement import Placed, Waiting, place_pods_with_claims
from master.model import ObjectMeta, PersistentVolumeClaim, Pod, PodSpec, Volume
from tests.unit.test_scheduler import infos_for, node, pod

GIB = 1024**3


def claim(
    name: str, *, node_name: str = "", modes: tuple[str, ...] = ("ReadWriteOnce",)
) -> PersistentVolumeClaim:
    return PersistentVolumeClaim(
        meta=ObjectMeta(name=name, uid=f"uid-{name}"),
        access_modes=modes,
        storage_bytes=GIB,
        volume_name=f"pvc-uid-{name}" if node_name else "",
        node_name=node_name,
    )


def with_claim(p: Pod, claim_name: str, *, cpu: int = 0) -> Pod:
    base = pod(p.meta.name, cpu=cpu)
    volume = Volume(name="data", source="persistentVolumeClaim", claim_name=claim_name)
    spec: PodSpec = replace(base.spec, volumes=(volume,))
    return replace(base, spec=spec)


def test_two_pods_of_a_new_claim_land_together_and_bind_it_once() -> None:
    first, second = with_claim(pod("a"), "data"), with_claim(pod("b"), "data")
    infos = infos_for(node("n1"), node("n2"))

    decisions, after = place_pods_with_claims([first, second], [], [claim("data")], infos, 50.0)

    assert all(isinstance(d, Placed) for d in decisions)
    placed = [d for d in decisions if isinstance(d, Placed)]
    assert placed[0].node == placed[1].node
    assert [c.meta.name for c in placed[0].binding.claims] == ["data"]
    assert placed[0].binding.claims[0].node_name == placed[0].node
    assert len(placed[0].binding.volumes) == 1
    assert placed[1].binding.claims == ()  # already bound by the first pod
    assert placed[0].binding.pod.spec.volumes[0].volume_name == "pinnace-pvc-uid-data"
    assert after[placed[0].node].pod_count == 2


def test_a_bound_claim_pins_its_pod_and_waits_when_that_node_is_gone_or_full() -> None:
    gone = with_claim(pod("a"), "on-n3")
    full = with_claim(pod("b"), "on-n1", cpu=8000)
    claims = [claim("on-n3", node_name="n3"), claim("on-n1", node_name="n1")]
    infos = infos_for(node("n1", cpu=4000), node("n2", cpu=16000))

    decisions, _ = place_pods_with_claims([gone, full], [], claims, infos, 50.0)

    assert [type(d) for d in decisions] == [Waiting, Waiting]
    assert isinstance(decisions[0], Waiting) and "n3" in decisions[0].message
    assert "that node is gone" in decisions[0].message
    # n2 has room, but the claim's data is on n1: the pod waits rather than start elsewhere.
    assert isinstance(decisions[1], Waiting) and "n1" in decisions[1].message


def test_a_read_write_once_pod_claim_admits_one_pod_at_a_time() -> None:
    holder = replace(with_claim(pod("a"), "solo"), node_name="n1")
    newcomer = with_claim(pod("b"), "solo")
    solo = claim("solo", node_name="n1", modes=("ReadWriteOncePod",))

    decisions, _ = place_pods_with_claims([newcomer], [holder], [solo], infos_for(node("n1")), 50.0)

    assert isinstance(decisions[0], Waiting)
    assert "a" in decisions[0].message


def test_claims_are_looked_up_in_the_pods_namespace() -> None:
    other_ns = replace(claim("data"), meta=ObjectMeta(name="data", namespace="shop", uid="u2"))
    mine = with_claim(pod("a"), "data")

    decisions, _ = place_pods_with_claims([mine], [], [other_ns], infos_for(node("n1")), 50.0)

    assert isinstance(decisions[0], Waiting)  # no claim "data" in namespace default
