"""The service table as the agents get it: kept for all sessions, sent on change.

Each state change of a Service, a Pod, a Node or a StatefulSet moves the table's index
(master/lb/servicetable_index.py: only the changed object's share, never a walk of every
pod); one that changed the table marks it stale and wakes the sessions. The first
session to look assembles it and converts it to the wire message once, converting again
only the Services whose entry changed. Its version grows only when the content changed,
so the many pod status reports that change nothing a node proxy cares about (a restart
count, a probe that still passes) send nothing and wake no session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from master.lb.servicetable import TableService
from master.lb.servicetable_index import Lookups, ServiceTableIndex
from master.model import Node, Service, StatefulSet, StoredObject
from master.state import ClusterState
from protos import node_pb2

WATCHED = frozenset({"Service", "Pod", "Node", "StatefulSet"})
# Sessions are told the table may have changed at most this often (kube-proxy's default
# minimum sync period is 1 s too); each tell wakes every node's session.
WAKE_INTERVAL = 1.0


# A node's pod subnet as every agent routes it: (node, address, pod subnet).
Subnets = tuple[tuple[str, str, str], ...]


def service_to_proto(s: TableService) -> node_pb2.ServiceEntry:
    return node_pb2.ServiceEntry(
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


def table_to_proto(
    version: int,
    table: tuple[TableService, ...],
    service_cidr: str,
    cluster_cidr: str = "",
    subnets: Subnets = (),
    convert: Callable[[TableService], node_pb2.ServiceEntry] = service_to_proto,
) -> node_pb2.ServiceTable:
    return node_pb2.ServiceTable(
        version=version,
        service_cidr=service_cidr,
        cluster_cidr=cluster_cidr,
        node_subnets=[node_pb2.NodeSubnet(node=n, address=a, pod_cidr=c) for n, a, c in subnets],
        services=[convert(s) for s in table],
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
        # Whether a node's route changed since the subnets were listed (None: never listed).
        self._subnets_for: str | None = None
        self._message = node_pb2.ServiceTable()
        # Each Service's wire entry as last converted, with the entry it was made from.
        self._converted: dict[tuple[str, str], tuple[TableService, node_pb2.ServiceEntry]] = {}
        self._wake: list[Callable[[], None]] = []
        self._woke_at = float("-inf")
        self._pending: asyncio.TimerHandle | None = None
        self._index = ServiceTableIndex(
            [s for s in state.objects("Service") if isinstance(s, Service)],
            [s for s in state.objects("StatefulSet") if isinstance(s, StatefulSet)],
            Lookups(
                pods_in=state.pods,
                pods_on_node=state.pods_on_node,
                pods_of_owner=state.pods_of_owner,
                serving=self._serving,
            ),
        )
        state.subscribe(self._on_change)

    def _serving(self, name: str) -> bool:
        node = self._state.get("Node", name)
        return isinstance(node, Node) and node.status.serving

    def on_stale(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` whenever the table may have changed; returns the unsubscribe."""
        self._wake.append(wake)
        return lambda: self._wake.remove(wake) if wake in self._wake else None

    def _on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        if kind not in WATCHED:
            return
        changed = self._index.on_change(obj, deleted, previous)
        if isinstance(obj, Node):
            # A pod subnet given, moved or gone changes every agent's routes (told by the
            # node's previous version).
            old = previous if isinstance(previous, Node) else None
            route = None if deleted or not obj.pod_cidr else (obj.address, obj.pod_cidr)
            if _route(old) != route:
                self._subnets_for = None
                changed = True
        if not changed:
            # A join storm's node writes, the many status reports that change no endpoint:
            # no session is woken for them.
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
        table = self._index.table()
        cluster = self._state.cluster_cidr
        cluster_text = str(cluster) if cluster is not None else ""
        if self._subnets_for != cluster_text:
            # Only when a route changed (or the cluster network did): listing them read
            # every node, once a second while anything changed.
            nodes = [n for n in self._state.objects("Node") if isinstance(n, Node)]
            subnets = (
                tuple(sorted((n.meta.name, n.address, n.pod_cidr) for n in nodes if n.pod_cidr))
                if cluster is not None
                else ()
            )
            self._subnets_for = cluster_text
            subnets_changed = subnets != self._subnets
            self._subnets = subnets
        else:
            subnets_changed = False
        if table != self._table or subnets_changed:
            self._table = table
            self._version += 1
            self._message = table_to_proto(
                self._version,
                table,
                str(self._state.service_cidr),
                cluster_text,
                self._subnets,
                self._convert,
            )
        return self._message

    def _convert(self, entry: TableService) -> node_pb2.ServiceEntry:
        """The entry's wire form, converted again only when the entry changed."""
        key = (entry.namespace, entry.name)
        held = self._converted.get(key)
        if held is not None and held[0] is entry:
            return held[1]
        message = service_to_proto(entry)
        self._converted[key] = (entry, message)
        if len(self._converted) > 2 * len(self._table or ()) + 16:
            alive = {(s.namespace, s.name) for s in self._table or ()}
            self._converted = {k: v for k, v in self._converted.items() if k in alive}
        return message
