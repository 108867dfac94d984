"""The service table as the agents get it: computed once for all sessions, sent on change.

A state change that may touch it (a Service, a Pod, a Node, a StatefulSet) only
marks the table stale and wakes the sessions; the first session to look
recomputes it with the pure `compute_service_table` (master/lb/servicetable.py)
and converts it to the wire message once. Its version grows only when the
content changed, so the many pod status reports that change nothing a node
proxy cares about (a restart count, a probe that still passes) send nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from master.lb.servicetable import TableService, compute_service_table
from master.model import Node, Pod, Service, StatefulSet, StoredObject
from master.state import ClusterState
from protos import node_pb2

WATCHED = frozenset({"Service", "Pod", "Node", "StatefulSet"})
# Sessions are told the table may have changed at most this often (kube-proxy's default
# minimum sync period is 1 s too); each tell wakes every node's session.
WAKE_INTERVAL = 1.0


# A node's pod subnet as every agent routes it: (node, address, pod subnet).
Subnets = tuple[tuple[str, str, str], ...]


def table_to_proto(
    version: int,
    table: tuple[TableService, ...],
    service_cidr: str,
    cluster_cidr: str = "",
    subnets: Subnets = (),
) -> node_pb2.ServiceTable:
    return node_pb2.ServiceTable(
        version=version,
        service_cidr=service_cidr,
        cluster_cidr=cluster_cidr,
        node_subnets=[node_pb2.NodeSubnet(node=n, address=a, pod_cidr=c) for n, a, c in subnets],
        services=[
            node_pb2.ServiceEntry(
                name=s.name,
                namespace=s.namespace,
                type=s.type,
                cluster_ip=s.cluster_ip,
                headless=s.headless,
                ports=[
                    node_pb2.ServicePortEntry(
                        name=p.name,
                        port=p.port,
                        protocol=p.protocol,
                        app_protocol=p.app_protocol,
                        node_port=p.node_port,
                        endpoints=[
                            node_pb2.ServiceEndpoint(
                                address=e.address,
                                port=e.port,
                                pod=e.pod,
                                node=e.node,
                                hostname=e.hostname,
                                subdomain=e.subdomain,
                                pod_ip=e.pod_ip,
                                target_port=e.target_port,
                            )
                            for e in p.endpoints
                        ],
                    )
                    for p in s.ports
                ],
            )
            for s in table
        ],
    )


def _route(node: Node | None) -> tuple[str, str] | None:
    """The node's (address, pod subnet) as every agent routes it (None: no subnet)."""
    return (node.address, node.pod_cidr) if node is not None and node.pod_cidr else None


class ServiceTableFeed:
    """The newest table (recomputed lazily) and whom to tell when it may have changed."""

    def __init__(self, state: ClusterState) -> None:
        self._state = state
        self._stale = True
        self._version = 0
        self._table: tuple[TableService, ...] | None = None
        self._subnets: Subnets = ()
        self._message = node_pb2.ServiceTable()
        self._wake: list[Callable[[], None]] = []
        self._woke_at = float("-inf")
        self._pending: asyncio.TimerHandle | None = None
        state.subscribe(self._on_change)

    def on_stale(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` whenever the table may have changed; returns the unsubscribe."""
        self._wake.append(wake)
        return lambda: self._wake.remove(wake) if wake in self._wake else None

    def _on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        if kind not in WATCHED:
            return
        if isinstance(obj, Node):
            # Of a node the table reads only whether it serves, and only for its pods: a
            # join storm's node writes (registration, Ready) woke every session each second
            # for nothing. A new node, a deleted one or one without pods changes nothing by
            # itself (a pod placed on it, or removed with it, is a change of its own). What
            # it was is told by its previous version.
            name = obj.meta.name
            old = previous if isinstance(previous, Node) else None
            # A pod subnet given, moved or gone changes every agent's routes.
            route = None if deleted or not obj.pod_cidr else (obj.address, obj.pod_cidr)
            rerouted = _route(old) != route
            if deleted and not rerouted:
                return
            before = old.status.serving if old is not None else None
            quiet = before in (None, obj.status.serving) or not self._state.pods_on_node(name)
            if quiet and not rerouted:
                return
        if self._stale:
            return  # the sessions were woken and none has looked yet: one look serves all
        self._stale = True
        # Coalesced: a stream of pod reports (thousands a second in a large cluster) woke
        # every session for each, and each wake-up recomputed the table over every pod.
        # The sessions hear at most every WAKE_INTERVAL seconds.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._wake_all()  # no loop (a synchronous caller): nothing to coalesce with
            return
        wait = max(0.0, self._woke_at + WAKE_INTERVAL - loop.time())
        if wait <= 0:
            self._wake_all()
        elif self._pending is None or self._pending.cancelled():
            self._pending = loop.call_later(wait, self._wake_all)

    def _wake_all(self) -> None:
        self._pending = None
        try:
            self._woke_at = asyncio.get_running_loop().time()
        except RuntimeError:
            self._woke_at = 0.0
        for wake in list(self._wake):
            wake()

    def current(self) -> node_pb2.ServiceTable:
        if not self._stale:
            return self._message
        self._stale = False
        services = [s for s in self._state.objects("Service") if isinstance(s, Service)]
        cluster = self._state.cluster_cidr
        # Only a Service with a selector has endpoints, and only subnets need the nodes:
        # without either the table is the same without reading every pod and node (each
        # recompute at 5,000 nodes / 50,000 pods read them all, once a second at apply).
        selecting = any(s.selector for s in services)
        pods: list[Pod] = list(self._state.pods()) if selecting else []
        nodes = (
            [n for n in self._state.objects("Node") if isinstance(n, Node)]
            if selecting or cluster is not None
            else []
        )
        sets = [s for s in self._state.objects("StatefulSet") if isinstance(s, StatefulSet)]
        table = compute_service_table(
            services,
            pods,
            {n.meta.name: n.status.serving for n in nodes} if selecting else {},
            {(s.meta.namespace, s.owner): s.service_name for s in sets if s.service_name},
        )
        subnets: Subnets = (
            tuple(sorted((n.meta.name, n.address, n.pod_cidr) for n in nodes if n.pod_cidr))
            if cluster is not None
            else ()
        )
        if table != self._table or subnets != self._subnets:
            self._table, self._subnets = table, subnets
            self._version += 1
            self._message = table_to_proto(
                self._version,
                table,
                str(self._state.service_cidr),
                str(cluster) if cluster is not None else "",
                subnets,
            )
        return self._message
