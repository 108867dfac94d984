"""Node Leases (coordination.k8s.io/v1, namespace kube-node-lease), computed on every read.

Kubernetes' kubelets renew a Lease object every 10 s; `kubectl describe node`
reads it ("Lease: HolderIdentity, AcquireTime, RenewTime") and prints "Failed to
get lease" when there is none. pinnace's agents heartbeat over their session and
the master keeps the last heartbeat in memory only (master/controllers/nodes.py's
LeaseTable, monotonic clock) so a heartbeat costs no store write. The Lease is
rendered from that table when asked: one per node, named after it, owned by it,
renewTime the wall-clock time of the last heartbeat. Nothing is stored, so
Leases are read-only here.

A watch of leases cannot follow every heartbeat (1,000 nodes heartbeating every
few seconds would be hundreds of events a second per watcher): `changed_leases`
says which leases to send when the watch looks again, at most every
WATCH_INTERVAL_S, which is how often a kubelet renews its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from master.api.render import rfc3339
from master.model import Node

Obj = dict[str, Any]

NAMESPACE = "kube-node-lease"
# How often a lease watch looks for renewals (a kubelet renews its lease every 10 s).
WATCH_INTERVAL_S = 10.0


def micro_time(t: float) -> str:
    """Kubernetes' MicroTime ("2006-01-02T15:04:05.000000Z")."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_lease(
    node: Node,
    last_seen: float | None,
    lease_seconds: float,
    mono_now: float,
    wall_now: float,
    resource_version: int,
) -> Obj:
    """The Lease of one node. `last_seen` is its last heartbeat on the monotonic clock
    (None: not heard from since this master started: no renewTime yet)."""
    spec: Obj = {
        "holderIdentity": node.meta.name,
        "leaseDurationSeconds": max(1, math.ceil(lease_seconds)),
    }
    if last_seen is not None:
        # A lease the master granted (at its start) may lie ahead of now: never the future.
        spec["renewTime"] = micro_time(wall_now - max(0.0, mono_now - last_seen))
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node.meta.name,
            "namespace": NAMESPACE,
            "uid": f"lease-{node.meta.uid}" if node.meta.uid else "",
            "resourceVersion": str(resource_version),
            "creationTimestamp": rfc3339(node.meta.created_at),
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node.meta.name, "uid": node.meta.uid}
            ],
        },
        "spec": spec,
    }


def node_leases(
    nodes: Iterable[Node],
    last_seen: Callable[[str], float | None],
    lease_of: Callable[[str], float | None],
    default_lease_seconds: float,
    mono_now: float,
    wall_now: float,
    resource_version: int,
    namespace: str | None = None,
) -> list[Obj]:
    """Every node's Lease, by name; none outside kube-node-lease (`namespace` None: all)."""
    if namespace is not None and namespace != NAMESPACE:
        return []
    return [
        node_lease(
            n,
            last_seen(n.meta.name),
            lease_of(n.meta.name) or default_lease_seconds,
            mono_now,
            wall_now,
            resource_version,
        )
        for n in sorted(nodes, key=lambda n: n.meta.name)
    ]


def changed_leases(before: dict[str, Obj], now: list[Obj]) -> list[tuple[str, Obj]]:
    """The watch events that take a client from the leases it was sent (`before`, by name)
    to `now`: ADDED, MODIFIED (renewTime moved) and DELETED (its node is gone)."""
    events: list[tuple[str, Obj]] = []
    seen = set()
    for lease in now:
        name = lease["metadata"]["name"]
        seen.add(name)
        old = before.get(name)
        if old is None:
            events.append(("ADDED", lease))
        elif old["spec"].get("renewTime") != lease["spec"].get("renewTime"):
            events.append(("MODIFIED", lease))
    events.extend(("DELETED", old) for name, old in before.items() if name not in seen)
    return events
