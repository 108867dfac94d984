"""Service endpoints: which pods serve which service port, and in what state.

`compute_lb_services` (pure) turns Services and Pods into the load balancer's
desired state (master.lb.model): one LbService per service port, with an
Endpoint for every pod the selector matches that has been placed and has
published the target port. An endpoint is
  * ready    when the pod reports ready and its node is Ready (or always, for a
             Service with publishNotReadyAddresses, as Kubernetes lists them);
  * draining when the pod has been asked to stop: it leaves the load balancer
    first (no new connections, in-flight ones finish) and only then is the agent
    told to stop it (see `pods_released`);
  * absent   when the pod is gone or its node was lost.
The target port is a container port number or the name of a container port, as
in Kubernetes; the endpoint address is where the agent published it, except for the
master's own HAProxy (`pod_ips`): a pod whose node publishes its ports on a loopback
address is reached at its own IP and container port where the agent reports one
(`lb_address`). Docker's userland proxy (docker-proxy) carries every connection to a
port published on loopback -- its nat OUTPUT rule leaves 127.0.0.0/8 out, so the kernel
does not DNAT them -- and it was a fifth of the direct path's throughput:
tests/bench/lb_tuning.py, wrk to a pod's IP against its published port, 1.29x/1.35x
(issue 15; tests/bench/README.md). What users see (`get endpoints`, the node proxies'
table) keeps the published port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from kernel.addresses import is_ip
from master.lb.model import Endpoint, LbService, ProxyMode
from master.model import Pod, Service, ServicePort, lb_name, pod_ref, selector_matches

# Ports that conventionally carry plain HTTP, used when a port says nothing else.
HTTP_PORTS = frozenset({80, 8000, 8008, 8080, 8888})


def lb_mode(port: ServicePort) -> ProxyMode:
    """Whether the load balancer may treat a service port as HTTP.

    Kubernetes' `appProtocol` decides when given; then the port's name (`http`,
    `http-*` as Istio reads it; any other name means "not known to be HTTP");
    then the well-known HTTP port numbers. Everything else is plain TCP.
    """
    if port.app_protocol:
        return "http" if port.app_protocol.lower() == "http" else "tcp"
    name = port.name.lower()
    if name:
        return "http" if name == "http" or name.startswith("http-") else "tcp"
    target = int(port.target_port) if port.target_port.isdigit() else 0
    return "http" if port.port in HTTP_PORTS or target in HTTP_PORTS else "tcp"


def _target_port(pod: Pod, target: str) -> tuple[int, str] | None:
    """(container port, protocol) a service targetPort names in this pod."""
    for container in pod.spec.containers:
        for port in container.ports:
            if (target.isdigit() and port.container_port == int(target)) or port.name == target:
                return port.container_port, port.protocol
    # Kubernetes also allows a numeric targetPort the container does not declare.
    return (int(target), "TCP") if target.isdigit() else None


def container_port(pod: Pod, target: str) -> int:
    """The container port a service targetPort names in this pod (0 if none)."""
    port = _target_port(pod, target)
    return port[0] if port is not None else 0


def _loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def lb_address(pod: Pod, container_port: int, host_port: int) -> tuple[str, int]:
    """Where the master's HAProxy reaches a pod's port (pure): at the pod's own IP and
    container port when its node publishes on a loopback address and the agent reports an
    IP it reaches the pod at (`status.pod_ip`: its address on a bridge whose gateway is
    the agent's machine's); else at the published port. A loopback endpoint answers only on
    the agent's own machine, so a master that can use it runs there and reaches that
    bridge as well, without Docker's userland proxy between (see the module doc)."""
    st = pod.status
    if is_ip(st.pod_ip) and _loopback(st.host_ip) and not _loopback(st.pod_ip):
        return st.pod_ip, container_port
    return st.host_ip, host_port


def pod_endpoint(pod: Pod, target: str, node_ready: bool, pod_ips: bool = False) -> Endpoint | None:
    """The pod's endpoint for a service port aimed at `target`, at its published port, or
    with `pod_ips` where the master's HAProxy reaches it (`lb_address`)."""
    if not pod.node_name or not is_ip(pod.status.host_ip):
        # HAProxy takes IP addresses only; a pod without one is not reachable yet.
        return None
    port = _target_port(pod, target)
    if port is None:
        return None
    host_port = pod.status.port_map.get(f"{port[0]}/{port[1]}")
    if not host_port:
        return None
    address, reached_port = (
        lb_address(pod, port[0], host_port) if pod_ips else (pod.status.host_ip, host_port)
    )
    return Endpoint(
        pod=pod_ref(pod),
        address=address,
        port=reached_port,
        ready=pod.status.ready and node_ready,
        draining=bool(pod.deletion_requested_at),
    )


def bind_addresses(
    svc: Service, external: str, internal: str, own_address: bool = False
) -> tuple[str, ...]:
    """ClusterIP services listen on the internal address only; LoadBalancer services on
    the external one too (in Kubernetes a LoadBalancer service also has a cluster IP),
    or, with `own_address` (from the pool), on that address alone."""
    if svc.type == "ClusterIP":
        return (internal,)
    if own_address or external in ("0.0.0.0", "::") or external == internal:
        # A wildcard listener already covers the internal address.
        return (external,)
    return (external, internal)


# (service, index of the service port) -> that port's endpoints, in pod name order.
EndpointsOf = Callable[[Service, int], tuple[Endpoint, ...]]


def compute_lb_services(
    services: Iterable[Service],
    pods: Sequence[Pod],
    ready_nodes: Mapping[str, bool],
    port_offset: int = 0,
    external: str = "",
    internal: str = "",
    include_headless: bool = False,
    own_addresses: Mapping[str, str] | None = None,
    tcp_only: bool = False,
    pod_ips: bool = False,
) -> list[LbService]:
    """The load balancer's services; headless ones (clusterIP None) get no load balancer and
    are left out unless `include_headless` (for listing endpoints). `own_addresses` are
    LoadBalancer Services' addresses from the pool, by name (each listens there only).
    `tcp_only` leaves UDP ports out (the master's HAProxy serves TCP; the node proxies'
    kernel rules serve UDP, and master/lb/conflicts.py says so on the Service). `pod_ips`:
    endpoints where the master's HAProxy reaches them (`lb_address`)."""
    members: dict[int, list[Pod]] = {}

    def endpoints_of(svc: Service, index: int) -> tuple[Endpoint, ...]:
        # A Service selects pods of its own namespace only.
        ns = svc.meta.namespace
        if id(svc) not in members:
            members[id(svc)] = sorted(
                (
                    p
                    for p in pods
                    if p.meta.namespace == ns and selector_matches(svc.selector, p.meta.labels)
                ),
                key=lambda p: p.meta.name,
            )
        target = svc.ports[index].target_port
        found = (
            pod_endpoint(pod, target, ready_nodes.get(pod.node_name, False), pod_ips)
            for pod in members[id(svc)]
        )
        return listed_endpoints(svc, found)

    return assemble_lb_services(
        services,
        endpoints_of,
        port_offset,
        external,
        internal,
        include_headless,
        own_addresses,
        tcp_only,
    )


def listed_endpoints(svc: Service, found: Iterable[Endpoint | None]) -> tuple[Endpoint, ...]:
    """A port's endpoints as the load balancer lists them (publishNotReadyAddresses: ready
    all the same, as Kubernetes lists them)."""
    listed = []
    for ep in found:
        if ep is None:
            continue
        if svc.publish_not_ready and not ep.ready:
            ep = replace(ep, ready=True)
        listed.append(ep)
    return tuple(listed)


def assemble_lb_services(
    services: Iterable[Service],
    endpoints_of: EndpointsOf,
    port_offset: int = 0,
    external: str = "",
    internal: str = "",
    include_headless: bool = False,
    own_addresses: Mapping[str, str] | None = None,
    tcp_only: bool = False,
) -> list[LbService]:
    """compute_lb_services with each port's endpoints from `endpoints_of` (computed from
    every pod there, kept by each change in master/lb/endpoint_index.py)."""
    own = own_addresses or {}
    result = []
    for svc in sorted(services, key=lambda s: lb_name(s)):
        if svc.headless and not include_headless:
            continue
        for index, sp in enumerate(svc.ports):
            if tcp_only and sp.protocol != "TCP":
                continue
            result.append(
                LbService(
                    name=lb_name(svc),
                    port_name=sp.name,
                    listen_port=sp.port + port_offset,
                    endpoints=endpoints_of(svc, index),
                    mode=lb_mode(sp),
                    bind_addresses=(
                        bind_addresses(
                            svc,
                            own.get(lb_name(svc), external),
                            internal,
                            lb_name(svc) in own,
                        )
                        if internal
                        else ()
                    ),
                )
            )
    return result


def pods_released(services: Sequence[LbService], stopping: Iterable[Pod]) -> set[str]:
    """Pods asked to stop that no longer take new traffic in the applied LB state.

    A pod is released once no service holds it as a ready (non-draining)
    endpoint; only then does its agent get the stop order. Pods are named by `pod_ref`.
    """
    return released_of(serving_pods(services), stopping)


def serving_pods(services: Sequence[LbService]) -> set[str]:
    """The pods (`pod_ref`) some service holds as a ready, non-draining endpoint."""
    return {ep.pod for svc in services for ep in svc.endpoints if ep.ready and not ep.draining}


def released_of(serving: set[str], stopping: Iterable[Pod]) -> set[str]:
    """pods_released, given the pods the applied state serves."""
    return {pod_ref(p) for p in stopping if pod_ref(p) not in serving}
