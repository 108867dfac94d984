"""metrics.k8s.io/v1beta1 (master/api/kube/metrics.py): what `kubectl top` reads, from the
same usage table and joins as `pinnace top`, so both print the same figures."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import make_mocked_request

from kernel.clock import FakeClock
from master.api.kube import metrics, resources
from master.api.kube.api import KubeApi
from master.api.kube.forward import is_session_bound
from master.api.usage import usage_response
from master.app.usage import ContainerUse, NodeReport, UsageTable, node_usage
from master.cli.top import node_table, pod_table
from master.model import (
    Container,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    Resources,
)
from master.state import ClusterState
from master.store import MemoryStore

MI = 1024 * 1024
AT = 1_764_528_000.0  # 2025-11-30T18:40:00Z


class NoLifecycle:
    def delete_pod(self, name: str, reason: str, message: str, namespace: str = "") -> bool:
        return False

    def forget_node(self, name: str) -> bool:
        return False


def _pod(name: str, namespace: str, labels: dict[str, str], *containers: str) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=PodSpec(containers=tuple(Container(c, "img") for c in containers)),
        node_name="n1",
    )


def _cluster() -> tuple[KubeApi, ClusterState, UsageTable]:
    state = ClusterState(MemoryStore(), FakeClock())
    for name, labels in (("n1", {"rack": "a"}), ("n2", {"rack": "b"})):
        state.put(
            Node(
                meta=ObjectMeta(name=name, labels=labels),
                address="127.0.0.1",
                capacity=Resources(2000, 4096 * MI),
                allocatable=Resources(1900, 3900 * MI),
                status=NodeStatus(ready=True),
            )
        )
    state.put(_pod("web-1", "default", {"app": "web"}, "web", "side"))
    state.put(_pod("db-0", "team", {"app": "db"}, "db"))
    state.put(_pod("quiet", "default", {"app": "web"}, "q"))  # never reported: left out
    usage = UsageTable()
    containers = (
        ContainerUse("web-1", "side", 7, 3 * MI),  # reported before "web": shown in spec order
        ContainerUse("web-1", "web", 250, 40 * MI + 5),
        ContainerUse("team/db-0", "db", 1003, 700 * MI),
        ContainerUse("gone-pod", "x", 5, MI),  # a pod the master no longer has
    )
    usage.record("n1", NodeReport(1400, 3001 * MI, containers, AT - 5.2))
    usage.record("n1", NodeReport(1411, 3099 * MI + 17, containers, AT))
    api = KubeApi(state, NoLifecycle(), FakeClock(), "", usage=usage)
    return api, state, usage


def _get(api: KubeApi, path: str) -> tuple[int, Any]:
    tail = path.removeprefix("/apis/metrics.k8s.io/v1beta1/")
    request = make_mocked_request("GET", path, match_info={"tail": tail.split("?")[0]})
    try:
        response = asyncio.run(api.metrics(request))
    except Exception as e:  # a KubeError: its status
        return getattr(e, "code", 0), getattr(e, "message", str(e))
    body = response.body
    assert isinstance(body, bytes)
    return response.status, json.loads(body)


def test_node_metrics_are_pinnace_tops_figures_in_kubectls_units() -> None:
    api, state, usage = _cluster()

    status, listed = _get(api, "/apis/metrics.k8s.io/v1beta1/nodes")

    assert status == 200 and listed["kind"] == "NodeMetricsList"
    (n1,) = listed["items"]  # n2 never reported
    assert n1["apiVersion"] == "metrics.k8s.io/v1beta1" and n1["kind"] == "NodeMetrics"
    assert n1["metadata"]["name"] == "n1" and n1["metadata"]["labels"] == {"rack": "a"}
    assert n1["usage"] == {"cpu": "1411m", "memory": str(3099 * MI + 17)}
    assert n1["timestamp"] == "2025-11-30T18:40:00Z" and n1["window"] == "5.2s"
    # kubectl's arithmetic on these strings and the Node's allocatable gives pinnace top's row
    millis = int(n1["usage"]["cpu"].removesuffix("m"))
    memory = int(n1["usage"]["memory"])
    kubectl_row = [
        "n1", f"{millis}m", f"{int(millis / 1900 * 100)}%",
        f"{memory // MI}Mi", f"{int(memory * 1000 / (3900 * MI * 1000) * 100)}%",
    ]  # fmt: skip
    ours = node_table(usage_response(usage, state)).splitlines()[1].split()
    assert ours == kubectl_row == ["n1", "1411m", "74%", "3099Mi", "79%"]

    assert _get(api, "/apis/metrics.k8s.io/v1beta1/nodes/n1")[1] == n1
    assert _get(api, "/apis/metrics.k8s.io/v1beta1/nodes/n2")[0] == 404
    assert _get(api, "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=rack%3Db")[1]["items"] == []


def test_pod_metrics_list_each_container_by_namespace_and_selector() -> None:
    api, state, usage = _cluster()

    _, every = _get(api, "/apis/metrics.k8s.io/v1beta1/pods")
    _, default = _get(api, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
    _, team = _get(api, "/apis/metrics.k8s.io/v1beta1/namespaces/team/pods?labelSelector=app%3Ddb")
    status, one = _get(api, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1")

    assert [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in every["items"]] == [
        ("team", "db-0"),
        ("default", "web-1"),
    ]  # fmt: skip (pinnace top's order: by "ns/name" outside default)
    assert every["kind"] == "PodMetricsList"
    assert [m["metadata"]["name"] for m in default["items"]] == ["web-1"]
    assert [m["metadata"]["name"] for m in team["items"]] == ["db-0"]
    assert status == 200 and one["kind"] == "PodMetrics"
    assert one["metadata"]["labels"] == {"app": "web"}
    assert one["containers"] == [
        {"name": "web", "usage": {"cpu": "250m", "memory": str(40 * MI + 5)}},
        {"name": "side", "usage": {"cpu": "7m", "memory": str(3 * MI)}},
    ]
    # kubectl top pod sums the containers: pinnace top's row
    summed = sum(int(c["usage"]["cpu"].removesuffix("m")) for c in one["containers"])
    memory = sum(int(c["usage"]["memory"]) for c in one["containers"])
    rows = pod_table(usage_response(usage, state)).splitlines()
    assert rows[1].split() == ["team/db-0", "1003m", "700Mi"]
    assert (
        rows[2].split() == ["web-1", f"{summed}m", f"{memory // MI}Mi"] == ["web-1", "257m", "43Mi"]
    )

    assert _get(api, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/quiet")[0] == 404
    assert _get(api, "/apis/metrics.k8s.io/v1beta1/namespaces/x/nodes")[0] == 404


def test_a_nodes_first_reading_has_the_agents_nominal_window() -> None:
    usage = UsageTable()
    usage.record("n1", NodeReport(1, 2, (), AT))
    (u,) = usage.reports.values()
    assert u.window_seconds == 0.0
    node = Node(ObjectMeta(name="n1"), "x", Resources(1, 1), Resources(1, 1))

    (item,) = metrics.node_metrics(node_usage(usage.reports, [node]), {})
    assert item["window"] == "5s" and item["metadata"]["labels"] == {}


def test_discovery_lists_metrics_v1beta1_and_the_leader_serves_it() -> None:
    groups = {g["name"]: g for g in resources.api_group_list()["groups"]}
    assert groups["metrics.k8s.io"]["preferredVersion"] == {
        "groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1",
    }  # fmt: skip
    assert resources.api_group("metrics.k8s.io") is not None
    listed = metrics.resource_list()
    assert [(r["name"], r["kind"], r["namespaced"]) for r in listed["resources"]] == [
        ("nodes", "NodeMetrics", False), ("pods", "PodMetrics", True),
    ]  # fmt: skip
    # Only the leader holds the agents' sessions, hence their usage: a follower forwards.
    assert is_session_bound("/apis/metrics.k8s.io/v1beta1/nodes")
    assert not is_session_bound("/api/v1/nodes")
