"""A Service manifest (v1) -> the model's Service.

A Service is a selector plus TCP or UDP ports (TCP is served through HAProxy, UDP
through the node's kernel NAT, agent/nodeproxy/udprules.py; SCTP is refused); a
nodePort (and allocateLoadBalancerNodePorts) is a request the master honours or refuses
at apply (master/app/nodeport.py); everything else Kubernetes' ServiceSpec offers is reported as not
supported yet. targetPort stays text ("8080" or a named container port); the
endpoints controller resolves it against each pod. `clusterIP: None` makes a
headless Service, as in Kubernetes: no address, no proxy, only its endpoints; a
fixed clusterIP is a request the master honours or refuses at apply
(master/app/clusterip.py), else it picks one from --service-cidr.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from master.manifest.errors import Where, describe
from master.manifest.fields import as_int, as_list, as_map, as_str, check_fields, one_of, require
from master.manifest.meta import parse_labels, parse_object_meta
from master.manifest.names import check_dns1035_label, check_dns1123_label, check_port_name
from master.model import HEADLESS, Service, ServicePort, ServiceType

SPEC_SUPPORTED = (
    *("ports", "selector", "type", "clusterIP", "clusterIPs", "loadBalancerIP"),
    *("publishNotReadyAddresses", "allocateLoadBalancerNodePorts"),
)
SPEC_UNSUPPORTED = ( "externalIPs", "sessionAffinity",
    "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy", "healthCheckNodePort",
    "sessionAffinityConfig", "ipFamilies", "ipFamilyPolicy",
    "loadBalancerClass", "internalTrafficPolicy",
    "trafficDistribution",
)  # fmt: skip
TYPES = ("ClusterIP", "LoadBalancer", "NodePort")
PORT_FIELDS = ("name", "protocol", "port", "targetPort", "nodePort", "appProtocol")


def _parse_target_port(value: Any, where: Where, port: int) -> str:
    if value is None:
        return str(port)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(as_int(value, where, 1, 65535))
    if isinstance(value, str):
        check_port_name(value, where)
        return value
    raise where.error(
        f"must be a port number (1-65535) or a container port name, got {describe(value)}"
    )


def _parse_port(value: Any, where: Where) -> ServicePort:
    data = as_map(value, where)
    check_fields(data, where, PORT_FIELDS, ())
    port = as_int(require(data, "port", where), where.key("port"), 1, 65535)
    protocol = "TCP"
    if data.get("protocol") is not None:
        protocol = as_str(data["protocol"], where.key("protocol"))
        if protocol == "SCTP":
            raise where.key("protocol").error('SCTP is not supported yet; use "TCP" or "UDP"')
        one_of(protocol, where.key("protocol"), ("TCP", "UDP"))
    name = ""
    if data.get("name") is not None:
        name = as_str(data["name"], where.key("name"))
        if name:
            check_dns1123_label(name, where.key("name"))
    app_protocol = ""
    if data.get("appProtocol") is not None:
        app_protocol = as_str(data["appProtocol"], where.key("appProtocol"))
        if len(app_protocol) > 253:
            raise where.key("appProtocol").error("must be at most 253 characters")
    node_port = 0
    if data.get("nodePort") is not None:
        node_port = as_int(data["nodePort"], where.key("nodePort"), 0, 65535)
    return ServicePort(
        port=port,
        target_port=_parse_target_port(data.get("targetPort"), where.key("targetPort"), port),
        protocol=protocol,
        name=name,
        node_port=node_port,
        app_protocol=app_protocol,
    )


def _parse_ports(value: Any, where: Where) -> tuple[ServicePort, ...]:
    items = as_list(value, where)
    if not items:
        raise where.error("is required (at least one port)")
    ports = tuple(_parse_port(item, where.index(i)) for i, item in enumerate(items))
    names: set[str] = set()
    numbers: set[tuple[int, str]] = set()
    for i, port in enumerate(ports):
        at = where.index(i)
        if len(ports) > 1 and not port.name:
            raise at.key("name").error("is required when a Service has more than one port")
        if port.name in names:
            raise at.key("name").error(f"duplicate port name {describe(port.name)}")
        names.add(port.name)
        if (port.port, port.protocol) in numbers:
            raise at.key("port").error(f"duplicate port {port.port}/{port.protocol}")
        numbers.add((port.port, port.protocol))
    return ports


def parse_service(data: dict[str, Any], where: Where) -> Service:
    """`data` is one document already known to be kind Service, apiVersion v1."""
    check_fields(data, where, ("apiVersion", "kind", "metadata", "spec"), (), ("status",))
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1035_label)
    at = where.key("spec")
    spec = as_map(require(data, "spec", where), at)
    check_fields(spec, at, SPEC_SUPPORTED, SPEC_UNSUPPORTED)
    kind = "ClusterIP"
    if spec.get("type") is not None:
        if spec["type"] == "ExternalName":
            raise at.key("type").error("ExternalName is not supported yet")
        kind = one_of(spec["type"], at.key("type"), TYPES)
    cluster_ip = _parse_cluster_ip(spec, at, kind)
    load_balancer_ip = _parse_load_balancer_ip(spec, at, kind)
    return Service(
        meta=meta,
        selector=parse_labels(spec.get("selector"), at.key("selector")),
        ports=_parse_ports(spec.get("ports"), at.key("ports")),
        type=ServiceType(kind),
        cluster_ip=cluster_ip,
        headless=cluster_ip == HEADLESS,
        load_balancer_ip=load_balancer_ip,
        publish_not_ready=_parse_publish_not_ready(spec, at),
        allocate_node_ports=_parse_allocate_node_ports(spec, at),
    )


def _parse_allocate_node_ports(spec: dict[str, Any], at: Where) -> bool | None:
    """spec.allocateLoadBalancerNodePorts: true or false (None when not given). Which type
    may carry it is the master's to judge (master/app/nodeport.py): as in Kubernetes, a
    Service changed from LoadBalancer may send back the value it had."""
    value = spec.get("allocateLoadBalancerNodePorts")
    if value is None:
        return None
    if not isinstance(value, bool):
        where = at.key("allocateLoadBalancerNodePorts")
        raise where.error(f"must be true or false, got {describe(value)}")
    return value


def _parse_publish_not_ready(spec: dict[str, Any], at: Where) -> bool:
    """spec.publishNotReadyAddresses: pods are named and served before they are ready (a
    StatefulSet's peers finding each other to form a cluster)."""
    value = spec.get("publishNotReadyAddresses")
    if value is None:
        return False
    if not isinstance(value, bool):
        where = at.key("publishNotReadyAddresses")
        raise where.error(f"must be true or false, got {describe(value)}")
    return value


def _parse_load_balancer_ip(spec: dict[str, Any], at: Where, kind: str) -> str:
    """spec.loadBalancerIP: an IP address, on a LoadBalancer Service only."""
    if not spec.get("loadBalancerIP"):
        return ""
    where = at.key("loadBalancerIP")
    text = as_str(spec["loadBalancerIP"], where)
    try:
        address = str(ipaddress.ip_address(text))
    except ValueError:
        raise where.error(f"must be an IP address, got {describe(text)}") from None
    if kind != "LoadBalancer":
        raise where.error(f"applies to a LoadBalancer Service only, not a {kind} one")
    return address


def _parse_cluster_ip(spec: dict[str, Any], at: Where, kind: str) -> str:
    """The address asked for: "None" (headless), an IP address, or "" (any)."""
    ips = [as_str(spec["clusterIP"], at.key("clusterIP"))] if spec.get("clusterIP") else []
    for i, ip in enumerate(as_list(spec.get("clusterIPs"), at.key("clusterIPs"))):
        ips.append(as_str(ip, at.key("clusterIPs").index(i)))
    headless = "None" in ips
    if headless and kind != "ClusterIP":
        raise at.key("clusterIP").error(f'may not be "None" for a {kind} Service')
    if headless and any(ip != "None" for ip in ips):
        raise at.key("clusterIPs").error('must be ["None"] when clusterIP is "None"')
    if headless:
        return HEADLESS
    if len(set(ips)) > 1:
        raise at.key("clusterIPs").error(
            "dual-stack Services are not supported yet; give one address"
        )
    if not ips:
        return ""
    field = at.key("clusterIP") if spec.get("clusterIP") else at.key("clusterIPs").index(0)
    try:
        return str(ipaddress.ip_address(ips[0]))
    except ValueError:
        raise field.error(
            f'must be an IP address, "None" or empty, got {describe(ips[0])}'
        ) from None
