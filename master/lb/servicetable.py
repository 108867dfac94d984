"""The service table every node gets: each Service's address, ports and ready endpoints (pure).

kube-proxy's model: the master's HAProxy serves LoadBalancer addresses
(north-south); east-west traffic goes from a pod to a Service's cluster IP,
which the node proxy on the pod's own machine (agent/nodeproxy) answers and
spreads over the ready endpoints -- no hop through the master, and it keeps
working while the master is away. The node's DNS reads the same table.

`compute_service_table(services, pods, ready_nodes, subdomains)` turns the
cluster's state into plain data: one `TableService` per Service, sorted by name,
with only the endpoints that may take new connections (the pod is ready, its
node is Ready, it is not being stopped) -- or, for a Service with
publishNotReadyAddresses, every pod that has an address and is not being stopped
(Kubernetes' endpoints controller lists those as ready: named and proxied). The table
is level-triggered: the master sends it whole when it changes and an agent keeps only
the newest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from master.lb.endpoints import container_port, lb_mode, pod_endpoint
from master.model import Pod, Service, selector_matches


@dataclass(frozen=True, slots=True)
class TableEndpoint:
    """Where one pod serves one service port: its node's address and host port."""

    address: str
    port: int
    pod: str
    node: str
    hostname: str = ""
    subdomain: str = ""
    # The pod's address on its machine's container network and its container port (""/0
    # unknown): node proxies on that machine reach a UDP pod there.
    pod_ip: str = ""
    target_port: int = 0


@dataclass(frozen=True, slots=True)
class TablePort:
    name: str
    port: int
    protocol: str
    app_protocol: str
    endpoints: tuple[TableEndpoint, ...]
    # Every node's port for it (NodePort and LoadBalancer Services); 0 none.
    node_port: int = 0


@dataclass(frozen=True, slots=True)
class TableService:
    name: str
    namespace: str
    type: str
    # "" when headless.
    cluster_ip: str
    headless: bool
    ports: tuple[TablePort, ...]


def table_endpoint(
    pod: Pod, target: str, serving: bool, subdomain: str, not_ready_too: bool
) -> TableEndpoint | None:
    """The pod's endpoint for a service port aimed at `target`, or None when it gives none
    (no such port, draining, or not ready unless the Service publishes those too). The one
    rule for the full table here and the kept one (master/lb/servicetable_index.py)."""
    ep = pod_endpoint(pod, target, serving)
    if ep is None or ep.draining or not (ep.ready or not_ready_too):
        return None
    return TableEndpoint(
        address=ep.address,
        port=ep.port,
        pod=pod.meta.name,
        node=pod.node_name,
        hostname=pod.meta.name if subdomain else "",
        subdomain=subdomain,
        pod_ip=pod.status.pod_ip,
        target_port=container_port(pod, target) if pod.status.pod_ip else 0,
    )


def table_service(svc: Service, endpoints: Sequence[tuple[TableEndpoint, ...]]) -> TableService:
    """A Service's table entry, its ports' endpoints given in the order of its ports (the one
    shape for the full table here and the kept one, master/lb/servicetable_index.py)."""
    return TableService(
        name=svc.meta.name,
        namespace=svc.meta.namespace,
        type=str(svc.type),
        cluster_ip="" if svc.headless else svc.cluster_ip,
        headless=svc.headless,
        ports=tuple(
            TablePort(
                name=sp.name,
                port=sp.port,
                protocol=sp.protocol,
                app_protocol=sp.app_protocol or lb_mode(sp),
                endpoints=found,
                node_port=sp.node_port,
            )
            for sp, found in zip(svc.ports, endpoints, strict=True)
        ),
    )


def _endpoints(
    svc_port_target: str,
    members: Sequence[Pod],
    ready_nodes: Mapping[str, bool],
    subdomains: Mapping[tuple[str, str], str],
    namespace: str,
    not_ready_too: bool = False,
) -> tuple[TableEndpoint, ...]:
    found = []
    for pod in members:
        subdomain = subdomains.get((namespace, pod.owner), "")
        ep = table_endpoint(
            pod,
            svc_port_target,
            ready_nodes.get(pod.node_name, False),
            subdomain,
            not_ready_too,
        )
        if ep is not None:
            found.append(ep)
    return tuple(found)


def compute_service_table(
    services: Iterable[Service],
    pods: Sequence[Pod],
    ready_nodes: Mapping[str, bool],
    subdomains: Mapping[tuple[str, str], str] | None = None,
) -> tuple[TableService, ...]:
    """Every Service with its cluster IP (none if headless or not yet given) and, per
    port, its ready endpoints. `subdomains` maps a pod owner (namespace,
    "StatefulSet/<name>") to the Service that governs its pods' names (the StatefulSet's
    serviceName)."""
    subs = subdomains or {}
    table = []
    for svc in sorted(services, key=lambda s: (s.meta.namespace, s.meta.name)):
        # A Service selects pods of its own namespace only; no selector, no endpoints.
        ns = svc.meta.namespace
        members = sorted(
            (
                p
                for p in pods
                if svc.selector
                and p.meta.namespace == ns
                and selector_matches(svc.selector, p.meta.labels)
            ),
            key=lambda p: p.meta.name,
        )
        table.append(
            table_service(
                svc,
                [
                    _endpoints(
                        sp.target_port, members, ready_nodes, subs, ns, svc.publish_not_ready
                    )
                    for sp in svc.ports
                ],
            )
        )
    return tuple(table)
