"""Evictions of nodes NotReady by their lease alone are rationed (fake clock).

The token bucket (master/controllers/eviction_rate.py) alone, then inside the node
lifecycle's decision: a misjudged fleet (thousands of healthy nodes past their lease with
their streams open, as a master reading its streams late saw them) costs a few nodes' pods;
killed agents (their streams ended) are evicted at once, whatever else is silent.
"""

from __future__ import annotations

from master.controllers.eviction_rate import EvictionRateSettings, LeaseEvictions
from master.controllers.lifecycle import (
    EvictPod,
    Moment,
    NodeHealthSettings,
    NodeSignals,
    SetEvictionRate,
    SetNodeCondition,
    reconcile_nodes,
)
from master.model import Container, Node, NodeStatus, ObjectMeta, Pod, PodSpec, Resources

ROOM = Resources(2000, 2**30)
SETTINGS = NodeHealthSettings(lease_seconds=22.0)
# No pause: this is the share the existing pause (more than half silent) does not cover.
WALL, MONO = 1_700_000_000.0, 1000.0


def test_a_burst_then_the_rate() -> None:
    bucket = LeaseEvictions()
    admitted, change = bucket.admit(0.0, ["a", "b", "c", "d"], silent=4, total=100)
    assert admitted == {"a", "b", "c"}
    assert change is None
    # Admitted nodes keep their turn; the fourth waits for a token (0.1 a second).
    assert bucket.admit(9.0, ["a", "b", "c", "d"], 4, 100)[0] == {"a", "b", "c"}
    assert bucket.admit(10.5, ["a", "b", "c", "d"], 4, 100)[0] == {"a", "b", "c", "d"}


def test_many_silent_at_once_slow_the_rate_and_say_so_once() -> None:
    bucket = LeaseEvictions()
    waiting = [f"n{i}" for i in range(2000)]
    admitted, change = bucket.admit(0.0, waiting, silent=2000, total=5000)
    assert len(admitted) == 3  # the burst saved before
    assert change is not None and change.slow
    assert "2000 of 5000 nodes are silent" in change.message
    # 60 s on: at one node every 100 s, none more.
    admitted, change = bucket.admit(60.0, waiting, 2000, 5000)
    assert len(admitted) == 3 and change is None
    admitted, _ = bucket.admit(101.0, waiting, 2000, 5000)
    assert len(admitted) == 4
    # The fleet heard again: the normal rate, said once.
    admitted, change = bucket.admit(102.0, [], 0, 5000)
    assert admitted == set()
    assert change is not None and not change.slow


def test_a_node_heard_again_gives_up_its_turn() -> None:
    bucket = LeaseEvictions(EvictionRateSettings(burst=1))
    assert bucket.admit(0.0, ["a"], 1, 10)[0] == {"a"}
    assert bucket.admit(1.0, [], 0, 10)[0] == set()
    assert bucket.admit(2.0, ["a"], 1, 10)[0] == set()  # a token again only in 10 s


def _node(name: str) -> Node:
    status = NodeStatus(ready=True, last_transition=5.0)
    return Node(ObjectMeta(name=name), "127.0.0.1", ROOM, ROOM, status=status)


def _pod(name: str, node: str) -> Pod:
    spec = PodSpec(containers=(Container(name="web", image="pinnace/httpd:latest"),))
    return Pod(meta=ObjectMeta(name=name), spec=spec, node_name=node, epoch=1)


def test_a_misjudged_fleet_loses_a_few_nodes_pods_and_killed_agents_theirs_at_once() -> None:
    # 2,000 of 5,000 nodes past their lease with their streams open (fewer than half: no
    # pause), and 5 killed agents (their streams ended), 10 pods each.
    hung = [_node(f"h{i:04}") for i in range(2000)]
    killed = [_node(f"k{i}") for i in range(5)]
    signals = {n.meta.name: NodeSignals(last_seen=MONO - 30.0) for n in hung}
    signals |= {
        n.meta.name: NodeSignals(last_seen=MONO - 30.0, session_ended_at=MONO - 8.0) for n in killed
    }
    nodes = hung + killed
    pods = {
        n.meta.name: [_pod(f"{n.meta.name}-{j}", n.meta.name) for j in range(10)] for n in nodes
    }
    bucket = LeaseEvictions()
    now = Moment(WALL, MONO)
    actions = reconcile_nodes(nodes, signals, pods, now, SETTINGS, False, 2995, bucket)
    not_ready = {a.node for a in actions if isinstance(a, SetNodeCondition)}
    assert len(not_ready) == 2005  # all judged, and their pods leave the load balancer
    evicted = {a.node for a in actions if isinstance(a, EvictPod)}
    assert {n.meta.name for n in killed} <= evicted
    assert len(evicted - {n.meta.name for n in killed}) == 3
    assert sum(isinstance(a, EvictPod) for a in actions) == 80
    rate = [a for a in actions if isinstance(a, SetEvictionRate)]
    assert len(rate) == 1 and rate[0].slow
    # Without the bucket (as before): every silent node's pods, 20,050 of them.
    unlimited = reconcile_nodes(nodes, signals, pods, now, SETTINGS, False, 2995)
    assert sum(isinstance(a, EvictPod) for a in unlimited) == 20050


def test_one_hung_agent_is_evicted_at_once() -> None:
    nodes = [_node("hung")]
    signals = {"hung": NodeSignals(last_seen=MONO - 23.0)}
    pods = {"hung": [_pod("p", "hung")]}
    actions = reconcile_nodes(
        nodes, signals, pods, Moment(WALL, MONO), SETTINGS, False, 9, LeaseEvictions()
    )
    assert [a.pod for a in actions if isinstance(a, EvictPod)] == ["p"]
