"""Claim disk room: a pod binding a new claim goes only where the claim's file fits.

Pure: the agent's report (ClaimDisk), the PersistentVolumes bound since, the filter, and
place_pods_with_claims putting them together over several pods in one pass.
"""

from __future__ import annotations

from dataclasses import replace

from kernel.claimfiles import MIB, claim_file_bytes
from master.controllers.claim_placement import Placed, Waiting, place_pods_with_claims
from master.controllers.claims import ClaimDisk, claim_room
from master.model import ObjectMeta, PersistentVolume
from master.scheduler.claim_storage import (
    NOT_ENOUGH_STORAGE,
    NOT_REPORTED,
    ClaimStorageFit,
    new_claim_bytes,
)
from master.scheduler.nodeinfo import NodeInfo
from tests.unit.test_claim_placement import GIB, claim, with_claim
from tests.unit.test_scheduler import infos_for, node, pod

FILE = claim_file_bytes(GIB)


def pv(name: str, node_name: str, *, phase: str = "Bound", size: int = GIB) -> PersistentVolume:
    return PersistentVolume(
        meta=ObjectMeta(name=name),
        storage_bytes=size,
        access_modes=("ReadWriteOnce",),
        node_name=node_name,
        claim_name=name,
        claim_uid=name,
        phase=phase,
    )


def roomy(infos: dict[str, NodeInfo], **free: int | None) -> dict[str, NodeInfo]:
    return {n: i.with_claim_room(free.get(n)) for n, i in infos.items()}


def test_a_claim_file_is_the_request_plus_ext4s_room_in_whole_mib() -> None:
    # 1 GiB + 2% (20.48 MiB) + a 32 MiB journal + 4 MiB = 1080.48 MiB, rounded up.
    assert claim_file_bytes(GIB) == 1081 * MIB
    assert claim_file_bytes(64 * MIB) % MIB == 0
    assert claim_file_bytes(64 * MIB) > 64 * MIB + 4 * MIB


def test_room_is_the_report_less_the_claims_bound_there_since() -> None:
    disk = ClaimDisk(free_bytes=10 * GIB, listed=frozenset({"pinnace-pvc-old"}))
    pvs = [
        pv("pvc-old", "n1"),  # its file is in the report already
        pv("pvc-new", "n1"),  # bound after the report: its file comes out of the room
        pv("pvc-gone", "n1", phase="Released"),  # unlisted and released: no file
        pv("pvc-other", "n2"),
    ]

    assert claim_room(disk, pvs, "n1") == 10 * GIB - FILE
    assert claim_room(None, pvs, "n1") is None  # sizes not enforced, or no report yet


def test_only_the_pods_unbound_claims_need_room() -> None:
    p = with_claim(pod("a"), "new")
    claims = {"new": claim("new"), "old": claim("old", node_name="n1")}

    assert new_claim_bytes(p, claims) == FILE
    assert new_claim_bytes(with_claim(pod("b"), "old"), claims) == 0
    assert new_claim_bytes(with_claim(pod("c"), "missing"), claims) == 0


def test_the_filter_refuses_a_node_short_of_room_and_lets_unreported_nodes_be() -> None:
    p = with_claim(pod("a"), "new")
    infos = roomy(infos_for(node("small"), node("big"), node("plain")), small=GIB, big=4 * GIB)
    fit = ClaimStorageFit(FILE)

    assert fit.filter(p, infos["small"]) == NOT_ENOUGH_STORAGE
    assert fit.filter(p, infos["big"]) is None
    assert fit.filter(p, infos["plain"]) is None  # no report: its agent's ENOSPC says why
    assert ClaimStorageFit(0).filter(p, infos["small"]) is None


def test_a_new_claim_goes_to_the_node_with_room() -> None:
    infos = roomy(infos_for(node("n1"), node("n2")), n1=GIB // 2, n2=8 * GIB)

    decisions, after = place_pods_with_claims(
        [with_claim(pod("a"), "data")], [], [claim("data")], infos, 50.0
    )

    assert isinstance(decisions[0], Placed) and decisions[0].node == "n2"
    assert after["n2"].claim_free_bytes == 8 * GIB - FILE


def test_no_node_with_room_leaves_the_pod_pending_in_kubectls_words() -> None:
    infos = roomy(infos_for(node("n1"), node("n2")), n1=GIB, n2=GIB)

    decisions, _ = place_pods_with_claims(
        [with_claim(pod("a"), "data")], [], [claim("data")], infos, 50.0
    )

    assert isinstance(decisions[0], Waiting)
    assert decisions[0].message == (
        "0/2 nodes are available: 2 node(s) did not have enough free storage. "
        'Claims to bind: persistentvolumeclaim "data" (1Gi).'
    )


def test_claims_placed_in_one_pass_take_their_room_before_the_next() -> None:
    # Room for one file on each node: three new claims, the third waits.
    infos = roomy(infos_for(node("n1"), node("n2")), n1=FILE + MIB, n2=FILE + MIB)
    pods = [with_claim(pod(f"p{i}"), f"c{i}") for i in range(3)]

    decisions, _ = place_pods_with_claims(pods, [], [claim(f"c{i}") for i in range(3)], infos, 50.0)

    placed = [d.node for d in decisions if isinstance(d, Placed)]
    assert sorted(placed) == ["n1", "n2"]
    assert isinstance(decisions[2], Waiting)
    assert "did not have enough free storage" in decisions[2].message


def test_a_pod_whose_claim_is_bound_needs_no_new_room() -> None:
    infos = roomy(infos_for(node("n1")), n1=0)
    bound = claim("data", node_name="n1")

    decisions, _ = place_pods_with_claims([with_claim(pod("a"), "data")], [], [bound], infos, 50.0)

    assert isinstance(decisions[0], Placed) and decisions[0].node == "n1"


def test_other_reasons_and_no_room_are_counted_per_node() -> None:
    infos = roomy(infos_for(node("n1", cpu=1000), node("n2")), n1=8 * GIB, n2=0)
    p = with_claim(pod("a"), "data", cpu=2000)

    decisions, _ = place_pods_with_claims([p], [], [claim("data")], infos, 50.0)

    assert isinstance(decisions[0], Waiting)
    assert decisions[0].message == (
        "0/2 nodes are available: 1 insufficient cpu, 1 node(s) did not have enough free storage."
        ' Claims to bind: persistentvolumeclaim "data" (1Gi).'
    )


def test_a_resized_claim_takes_its_growth_from_the_room_until_its_filesystem_holds_it() -> None:
    disk = ClaimDisk(free_bytes=10 * GIB, listed=frozenset({"pinnace-pvc-data"}))
    grown = replace(claim("data", node_name="n1"), storage_bytes=3 * GIB, capacity_bytes=GIB)
    growth = claim_file_bytes(3 * GIB) - claim_file_bytes(GIB)
    volume = replace(pv("pvc-data", "n1"), claim_name="data")

    assert claim_room(disk, [volume], "n1", [grown]) == 10 * GIB - growth
    done = replace(grown, capacity_bytes=3 * GIB)  # grown: the report counts the file
    assert claim_room(disk, [volume], "n1", [done]) == 10 * GIB
    # resized before its file was made: the file is made at the new size
    unlisted = ClaimDisk(free_bytes=10 * GIB, listed=frozenset())
    assert claim_room(unlisted, [volume], "n1", [grown]) == (10 * GIB - claim_file_bytes(3 * GIB))


def test_a_node_not_reported_since_the_master_started_waits_and_says_so() -> None:
    infos = {
        n: i.with_claim_room(None, unknown=True)
        for n, i in infos_for(node("n1"), node("n2")).items()
    }

    decisions, _ = place_pods_with_claims(
        [with_claim(pod("a"), "data")], [], [claim("data")], infos, 50.0
    )
    bound, _ = place_pods_with_claims(
        [with_claim(pod("b"), "old")], [], [claim("old", node_name="n1")], infos, 50.0
    )

    assert isinstance(decisions[0], Waiting)
    assert decisions[0].message == (
        f"0/2 nodes are available: 2 {NOT_REPORTED}. "
        'Claims to bind: persistentvolumeclaim "data" (1Gi).'
    )
    assert isinstance(bound[0], Placed)  # a bound claim needs no new room
