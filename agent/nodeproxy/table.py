"""The service table as the agent holds it: plain data, converted from the master's message.

The master sends the whole table on every change (protos/node.proto ServiceTable,
level-triggered, a growing `version`); the agent keeps only the newest and hands it
to whoever serves from it: the node proxy (agent/nodeproxy/proxy.py) and the node's
DNS. Subscribers get the table on `publish`; one that fails is logged and the others
still get it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.hostgw.plan import NodeSubnet
from protos import node_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backend:
    """One ready endpoint of a service port: the pod's node address and host port."""

    address: str
    port: int
    pod: str = ""
    node: str = ""
    # A StatefulSet pod's stable name parts (<hostname>.<subdomain>.<ns>.svc), else "".
    hostname: str = ""
    subdomain: str = ""
    # The pod's address on its machine's container network and its container port (""/0
    # unknown): the UDP rules of a node proxy on that machine DNAT there.
    pod_ip: str = ""
    target_port: int = 0


@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str
    port: int
    protocol: str = "TCP"
    app_protocol: str = ""
    backends: tuple[Backend, ...] = ()
    # The port every node answers on for this Service port (NodePort, LoadBalancer); 0 none.
    node_port: int = 0


@dataclass(frozen=True, slots=True)
class TableService:
    name: str
    # "" is the default namespace.
    namespace: str = ""
    type: str = "ClusterIP"
    # "" when headless (or not given yet).
    cluster_ip: str = ""
    headless: bool = False
    ports: tuple[ServicePort, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceTable:
    version: int = 0
    services: tuple[TableService, ...] = ()
    service_cidr: str = ""
    # The master's --cluster-cidr ("" none) and every node's pod subnet in it, for the
    # node's host-gw routes and its DNS (agent/hostgw).
    cluster_cidr: str = ""
    subnets: tuple[NodeSubnet, ...] = ()


def table_from_proto(msg: node_pb2.ServiceTable) -> ServiceTable:
    return ServiceTable(
        version=msg.version,
        service_cidr=msg.service_cidr,
        cluster_cidr=msg.cluster_cidr,
        subnets=tuple(NodeSubnet(n.node, n.address, n.pod_cidr) for n in msg.node_subnets),
        services=tuple(
            TableService(
                name=s.name,
                namespace=s.namespace,
                type=s.type,
                cluster_ip=s.cluster_ip,
                headless=s.headless,
                ports=tuple(
                    ServicePort(
                        name=p.name,
                        port=p.port,
                        protocol=p.protocol or "TCP",
                        app_protocol=p.app_protocol,
                        node_port=p.node_port,
                        backends=tuple(
                            Backend(
                                e.address,
                                e.port,
                                e.pod,
                                e.node,
                                e.hostname,
                                e.subdomain,
                                e.pod_ip,
                                e.target_port,
                            )
                            for e in p.endpoints
                        ),
                    )
                    for p in s.ports
                ),
            )
            for s in msg.services
        ),
    )


TableListener = Callable[[ServiceTable], None]


class ServiceTables:
    """The newest table and its subscribers (the node proxy, the node's DNS)."""

    def __init__(self) -> None:
        self.current: ServiceTable | None = None
        self._listeners: list[TableListener] = []

    def subscribe(self, listener: TableListener) -> None:
        self._listeners.append(listener)
        if self.current is not None:
            listener(self.current)

    def publish(self, table: ServiceTable) -> None:
        """Hand a received table on. Versions restart with a new master (a restart, a
        failover), so the content decides: a table equal to the current one is dropped."""
        if self.current is not None and replace(table, version=0) == replace(
            self.current, version=0
        ):
            return
        self.current = table
        for listener in list(self._listeners):
            try:
                listener(table)
            except Exception:
                log.exception("a service table subscriber failed (the others still get it)")
