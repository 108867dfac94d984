"""metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics from the agents' usage reports.

`kubectl top nodes|pods` reads this API (what metrics-server serves on a Kubernetes
cluster): it lists NodeMetrics or PodMetrics and, for nodes, divides by the Node's
`status.allocatable` itself. pinnace's numbers are the ones `pinnace top` prints, from
the same in-memory table (master/app/usage.py: the last report of each agent's Docker
stats and machine readings, joined with the nodes and pods the cluster has now), so the
two commands agree.

The conversion is pure: usage in, Kubernetes-shaped objects out. CPU is written in
millicores (`250m`) and memory in bytes (`67108864`), the units pinnace measures in, so
kubectl's rounding (millicores, Mi) gives `pinnace top`'s figures exactly. `window` is
the time between the node's last two readings, which its CPU rates average over (the
agents' nominal 5 s before a node's second reading).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from master.api.render import rfc3339
from master.app.usage import NodeUse, PodContainersUse
from master.model import Node

Obj = dict[str, Any]

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
# The agents' usage interval (agent/session.py USAGE_INTERVAL): the window of a node's
# first reading, before a second one says how long it really was.
NOMINAL_WINDOW_SECONDS = 5.0


def _window(seconds: float) -> str:
    """A Go time.Duration as JSON writes it ("5s", "5.012s")."""
    shown = seconds if seconds > 0 else NOMINAL_WINDOW_SECONDS
    return f"{round(shown, 3):g}s"


def _usage(cpu_millis: int, memory_bytes: int) -> Obj:
    return {"cpu": f"{max(cpu_millis, 0)}m", "memory": str(max(memory_bytes, 0))}


def node_metrics(uses: Iterable[NodeUse], nodes: Mapping[str, Node]) -> list[Obj]:
    """One NodeMetrics per node that has reported (`uses`, from node_usage), by name;
    `nodes` by name give their labels (kubectl top node -l selects on them)."""
    items = []
    for u in uses:
        node = nodes.get(u.node)
        items.append(
            {
                "kind": "NodeMetrics",
                "apiVersion": API_VERSION,
                "metadata": {
                    "name": u.node,
                    "creationTimestamp": rfc3339(u.measured_at),
                    "labels": dict(node.meta.labels) if node is not None else {},
                },
                "timestamp": rfc3339(u.measured_at),
                "window": _window(u.window_seconds),
                "usage": _usage(u.cpu_millis, u.memory_bytes),
            }
        )
    return items


def pod_metrics(uses: Iterable[PodContainersUse]) -> list[Obj]:
    """One PodMetrics per pod whose node reported its containers (`uses`, from
    pod_containers_usage), one entry per container, in the pod's container order."""
    items = []
    for u in uses:
        meta = u.pod.meta
        order = {c.name: i for i, c in enumerate(u.pod.spec.containers)}
        containers = sorted(
            u.containers, key=lambda c: (order.get(c.container, len(order)), c.container)
        )
        items.append(
            {
                "kind": "PodMetrics",
                "apiVersion": API_VERSION,
                "metadata": {
                    "name": meta.name,
                    "namespace": meta.namespace,
                    "creationTimestamp": rfc3339(u.measured_at),
                    "labels": dict(meta.labels),
                },
                "timestamp": rfc3339(u.measured_at),
                "window": _window(u.window_seconds),
                "containers": [
                    {"name": c.container, "usage": _usage(c.cpu_millis, c.memory_bytes)}
                    for c in containers
                ],
            }
        )
    return items


def metrics_list(kind: str, items: list[Obj], resource_version: str) -> Obj:
    return {
        "kind": f"{kind}List",
        "apiVersion": API_VERSION,
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    }


def resource_list() -> Obj:
    """/apis/metrics.k8s.io/v1beta1: what kubectl top finds there."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": API_VERSION,
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics",
             "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics",
             "verbs": ["get", "list"]},
        ],
    }  # fmt: skip


def group_version() -> Obj:
    return {"groupVersion": API_VERSION, "version": VERSION}
