"""Node ports: a port on every node for each port of a NodePort or LoadBalancer Service (pure).

Kubernetes gives every port of a NodePort Service (and, by default, of a LoadBalancer
one) a port from `--service-node-port-range` (30000-32767) on which every node answers;
pinnace does the same with the same flag. The node proxies (agent/nodeproxy) listen on
the node's address at that port (TCP, through HAProxy) or cover it in their kernel
rules (UDP, agent/nodeproxy/udprules.py).

The port is stored on the Service (`spec.ports[].nodePort`), so it is stable across
re-applies, master restarts and failovers: allocation reads what is taken from the
stored Services and nothing else. As in Kubernetes a node port number belongs to one
Service whatever the protocol, except that the TCP and UDP sides of one Service port
(a DNS Service's 53/TCP and 53/UDP) share one. A requested nodePort is honoured or refused
in one sentence (outside the range, taken by another Service); a re-applied Service
without one keeps what it has; a ClusterIP Service has none (asking is refused).

Two rules come from Kubernetes' Service strategy and allocator:
- a Service changed from NodePort or LoadBalancer to a type without node ports may send
  back the node ports it had (`kubectl get -o yaml`, edit the type, apply): they are
  dropped with the type, as Kubernetes' dropTypeDependentFields does; a node port it did
  not have is refused as before. The same holds for allocateLoadBalancerNodePorts sent
  back unchanged on a Service that is no longer a LoadBalancer.
- `allocateLoadBalancerNodePorts: false` on a LoadBalancer Service: no node port is
  allocated (its traffic comes through the load balancer's address alone), but a port
  that asks for one by number gets it (Kubernetes' allocator: "don't allocate new ports,
  but do respect specific requests"), and a re-apply without one frees the one it had.

Flow: apply plans its objects (master/app/apply.py) -> `assign_node_ports` gives each
created or configured Service's ports their node ports (or refuses the whole apply
with one sentence) -> the Services are stored with them. A Service deleted, or changed
to ClusterIP, frees its ports with it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace

from master.model import DEFAULT_NODE_PORTS, NodePortRange, Service, ServicePort, ServiceType

# The node port numbers other Services hold.
Taken = set[int]


class NodePortError(ValueError):
    """A Service's requested node port cannot be given, or none is left: one sentence."""


PortRange = NodePortRange
DEFAULT_RANGE = DEFAULT_NODE_PORTS


def parse_port_range(text: str) -> PortRange:
    """`--service-node-port-range`: "FIRST-LAST" (Kubernetes' form), as one sentence when not."""
    first, dash, last = text.strip().partition("-")
    try:
        low, high = int(first), int(last if dash else first)
    except ValueError:
        raise NodePortError(
            f"--service-node-port-range {text}: not a range like 30000-32767"
        ) from None
    if not 1 <= low <= high <= 65535:
        raise NodePortError(
            f"--service-node-port-range {text}: give FIRST-LAST with 1 <= FIRST <= LAST <= 65535"
        )
    return PortRange(low, high)


def wants_node_ports(svc: Service) -> bool:
    return svc.type in (ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER)


def allocates(svc: Service) -> bool:
    """Whether ports without a requested node port get one (allocateLoadBalancerNodePorts)."""
    return wants_node_ports(svc) and not (
        svc.type == ServiceType.LOAD_BALANCER and svc.allocate_node_ports is False
    )


def drop_type_dependent(svc: Service, previous: Service | None) -> Service:
    """`svc` without what a type change leaves behind and the user did not change: the node
    ports the stored Service had, and allocateLoadBalancerNodePorts as it was (Kubernetes'
    dropTypeDependentFields)."""
    if previous is None:
        return svc
    if wants_node_ports(previous) and not wants_node_ports(svc):
        asked = {p.node_port for p in svc.ports if p.node_port}
        had = {p.node_port for p in previous.ports if p.node_port}
        if asked <= had:
            svc = replace(svc, ports=tuple(replace(p, node_port=0) for p in svc.ports))
    was_lb = previous.type == ServiceType.LOAD_BALANCER
    shown = previous.allocate_node_ports is not False  # as `get -o yaml` showed it
    if was_lb and svc.type != ServiceType.LOAD_BALANCER and svc.allocate_node_ports == shown:
        svc = replace(svc, allocate_node_ports=None)
    return svc


def taken_node_ports(services: Iterable[Service]) -> Taken:
    """The node port numbers stored Services hold."""
    return {p.node_port for s in services for p in s.ports if p.node_port}


def _first_free(ports: PortRange, taken: Collection[int]) -> int | None:
    for candidate in range(ports.first, ports.last + 1):
        if candidate not in taken:
            return candidate
    return None


def _kept(previous: Service | None, port: ServicePort) -> int:
    """The node port a stored Service's same port (number and protocol) already has."""
    if previous is None:
        return 0
    for old in previous.ports:
        if (old.port, old.protocol) == (port.port, port.protocol) and old.node_port:
            return old.node_port
    return 0


def assign_node_ports(
    svc: Service, previous: Service | None, taken: Taken, ports: PortRange = DEFAULT_RANGE
) -> Service:
    """`svc` (as planned by apply) with a node port on every port; raises NodePortError.

    `svc.ports[].node_port` holds what the manifest asked for (0 for any); `taken` holds
    every other Service's ports (this Service's own new ones are added as they are given).
    """
    svc = drop_type_dependent(svc, previous)
    if svc.allocate_node_ports is not None and svc.type != ServiceType.LOAD_BALANCER:
        raise NodePortError(
            f"service/{svc.meta.name}: spec.allocateLoadBalancerNodePorts: applies to a "
            f"LoadBalancer Service only, not a {svc.type} one (remove the field, or set "
            "spec.type: LoadBalancer)"
        )
    if not wants_node_ports(svc):
        for i, port in enumerate(svc.ports):
            if port.node_port:
                raise NodePortError(
                    f"service/{svc.meta.name}: spec.ports[{i}].nodePort: a {svc.type} Service "
                    "has no node port (remove the field, or set spec.type: NodePort)"
                )
        return svc
    # node port -> (service port, protocol) given so far in this Service.
    mine: dict[int, tuple[int, str]] = {}
    result = []
    for i, port in enumerate(svc.ports):
        where = f"service/{svc.meta.name}: spec.ports[{i}].nodePort"
        sibling = next((n for n, (p, _) in mine.items() if p == port.port), 0)
        if allocates(svc):
            wanted = port.node_port or _kept(previous, port) or sibling
        else:
            # Only what is asked for by number (or its other protocol's): nothing is kept.
            wanted = port.node_port or sibling
            if not wanted:
                result.append(replace(port, node_port=0))
                continue
        if wanted:
            if wanted not in ports:
                raise NodePortError(
                    f"{where}: {wanted} is outside the node port range {ports} "
                    "(choose a port in it, or leave the field out and the master picks one)"
                )
            # Within this Service only the other protocol of the same port may share it.
            other = "UDP" if port.protocol == "TCP" else "TCP"
            if wanted in taken or mine.get(wanted, (port.port, other)) != (port.port, other):
                raise NodePortError(
                    f"{where}: {wanted} is already allocated to another Service port "
                    "(choose another port or leave the field out)"
                )
        else:
            free = _first_free(ports, taken | mine.keys())
            if free is None:
                raise NodePortError(
                    f"{where}: no port left in the node port range {ports} "
                    "(delete a NodePort Service or start the master with a larger "
                    "--service-node-port-range)"
                )
            wanted = free
        mine[wanted] = (port.port, port.protocol)
        result.append(replace(port, node_port=wanted))
    taken.update(mine)
    return replace(svc, ports=tuple(result))
