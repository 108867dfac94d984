"""Node Leases computed from the master's heartbeat table (master/api/kube/leases.py)."""

from __future__ import annotations

from master.api.kube.leases import NAMESPACE, changed_leases, micro_time, node_lease, node_leases
from master.model import Node, ObjectMeta, Resources

WALL = 1_800_000_000.0


def _node(name: str) -> Node:
    return Node(
        meta=ObjectMeta(name=name, uid=f"uid-{name}", created_at=WALL - 3600),
        address="10.0.0.1",
        capacity=Resources(),
        allocatable=Resources(),
    )


def test_renew_time_is_the_last_heartbeat_on_the_wall_clock() -> None:
    lease = node_lease(_node("n1"), last_seen=95.5, lease_seconds=2.5, mono_now=100.0,
                       wall_now=WALL, resource_version=7)  # fmt: skip
    assert lease["spec"] == {
        "holderIdentity": "n1",
        "leaseDurationSeconds": 3,
        "renewTime": micro_time(WALL - 4.5),
    }
    assert lease["spec"]["renewTime"].endswith(".500000Z")
    assert lease["metadata"]["namespace"] == NAMESPACE
    assert lease["metadata"]["resourceVersion"] == "7"
    assert lease["metadata"]["ownerReferences"][0] == {
        "apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1"
    }  # fmt: skip


def test_a_granted_lease_ahead_of_now_is_never_renewed_in_the_future() -> None:
    lease = node_lease(_node("n1"), 130.0, 40, 100.0, WALL, 1)
    assert lease["spec"]["renewTime"] == micro_time(WALL)


def test_a_node_not_heard_from_has_no_renew_time() -> None:
    assert "renewTime" not in node_lease(_node("n1"), None, 40, 100.0, WALL, 1)["spec"]


def test_leases_live_only_in_kube_node_lease() -> None:
    nodes = [_node("b"), _node("a")]
    seen = {"a": 90.0, "b": 99.0}

    def leases(namespace: str | None) -> list[str]:
        out = node_leases(nodes, seen.get, lambda _: None, 40, 100.0, WALL, 3, namespace)
        return [o["metadata"]["name"] for o in out]

    assert leases(NAMESPACE) == ["a", "b"]
    assert leases(None) == ["a", "b"]
    assert leases("default") == []


def test_watch_events_carry_only_renewals_arrivals_and_departures() -> None:
    nodes = [_node("a"), _node("b")]
    before = {o["metadata"]["name"]: o for o in node_leases(
        nodes, {"a": 90.0, "b": 90.0}.get, lambda _: None, 40, 100.0, WALL, 1)}  # fmt: skip
    # 10 s on the same clocks: "a" heartbeat again, "b" did not, "c" joined.
    now = node_leases(
        [*nodes, _node("c")], {"a": 108.0, "b": 90.0, "c": 109.0}.get, lambda _: None, 40,
        110.0, WALL + 10, 2,
    )  # fmt: skip
    assert [(t, o["metadata"]["name"]) for t, o in changed_leases(before, now)] == [
        ("MODIFIED", "a"),
        ("ADDED", "c"),
    ]
    gone = changed_leases(before, now[:1])
    assert [(t, o["metadata"]["name"]) for t, o in gone] == [("MODIFIED", "a"), ("DELETED", "b")]
