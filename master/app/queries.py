"""Reads: listing and getting objects, and the derived Endpoints, for every API edge.

Objects come from the in-memory ClusterState; a label selector is equality-based.
Endpoints are not stored: they are each service's pods as the load balancer
sees them, derived on every read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from master.app.errors import AppError, not_found
from master.app.podnetwork import PodNetwork, network_of, pod_address
from master.lb.endpoints import compute_lb_services, container_port
from master.lb.model import LbService
from master.model import (
    DEFAULT_NAMESPACE,
    KINDS,
    Node,
    Pod,
    Service,
    StoredObject,
    is_namespaced,
    lb_name,
    pod_ref,
    selector_matches,
)
from master.state import ClusterState


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise AppError(
            "invalid", f"unknown kind {kind[:60]!r}; known kinds: {', '.join(sorted(KINDS))}"
        )


def list_objects(
    state: ClusterState,
    kind: str,
    name: str = "",
    selector: Mapping[str, str] | None = None,
    namespace: str | None = DEFAULT_NAMESPACE,
) -> list[StoredObject]:
    """One object by name (AppError(not_found) when missing) or all of a kind, by
    namespace then name; `namespace` None: every namespace (-A; not with a name).

    Events keep their time order.
    """
    check_kind(kind)
    if name:
        obj = state.get(kind, name, namespace or DEFAULT_NAMESPACE)
        if obj is None:
            raise not_found(kind, name)
        objs = [obj]
    else:
        objs = state.objects(kind, namespace)
    if selector:
        objs = [o for o in objs if selector_matches(dict(selector), o.meta.labels)]
    if kind != "Event":
        objs.sort(key=lambda o: (o.meta.namespace if is_namespaced(kind) else "", o.meta.name))
    return objs


def list_endpoints(
    state: ClusterState, name: str = "", namespace: str | None = DEFAULT_NAMESPACE
) -> list[tuple[Service, list[LbService]]]:
    """Each service (or the named one) of `namespace` (None: all) with its ports' endpoints,
    by namespace and service name."""
    services = [s for s in state.objects("Service", namespace) if isinstance(s, Service)]
    if name:
        services = [s for s in services if s.meta.name == name]
        if not services:
            raise not_found("Endpoints", name)
    nodes = {n.meta.name: n.status.serving for n in state.objects("Node") if isinstance(n, Node)}
    pods = state.pods()
    lb = compute_lb_services(services, pods, nodes, include_headless=True)
    network = network_of(state)
    if network is not None and network.subnets:
        by_ref = {pod_ref(p): p for p in pods}
        by_name = {lb_name(s): s for s in services}
        lb = [_at_pod_addresses(by_name[p.name], p, by_ref, network) for p in lb]
    return [
        (svc, [p for p in lb if p.name == lb_name(svc)])
        for svc in sorted(services, key=lambda s: (s.meta.namespace, s.meta.name))
    ]


def _at_pod_addresses(
    svc: Service, port: LbService, pods: Mapping[str, Pod], network: PodNetwork
) -> LbService:
    """The port's endpoints as Kubernetes lists them where the pods' own addresses answer
    from every node: pod address and container port (master/app/podnetwork.py); the others
    stay at their node's address and host port."""
    target = next((sp.target_port for sp in svc.ports if sp.name == port.port_name), "")
    shown = []
    for ep in port.endpoints:
        pod = pods.get(ep.pod)
        address = pod_address(pod, network) if pod is not None else None
        number = container_port(pod, target) if pod is not None and target else 0
        if address is not None and address.routable and number:
            ep = replace(ep, address=address.ip, port=number)
        shown.append(ep)
    return replace(port, endpoints=tuple(shown))
