"""Service manifests: the seed file, ports and targetPorts, types, warnings and messages."""

from __future__ import annotations

from typing import Any

import pytest

from master.manifest import parse_manifests
from master.model import Service, ServicePort
from tests.support import SEED
from tests.unit.test_manifest_support import SERVICE, error, mutate, parse

PREFIX = "service.yaml: document 1: "


def only_service(doc: dict[str, Any]) -> Service:
    (obj,) = parse(doc, file="service.yaml").objects
    assert isinstance(obj, Service)
    return obj


def test_seed_service_parses_unchanged() -> None:
    parsed = parse_manifests([("service.yaml", (SEED / "service.yaml").read_bytes())])

    (svc,) = parsed.objects
    assert isinstance(svc, Service)
    assert svc.meta.name == "my-web-app-service"
    assert svc.selector == {"app": "my-web-app"}
    assert svc.ports == (ServicePort(port=80, target_port="80", protocol="TCP"),)
    assert svc.type == "LoadBalancer"
    assert parsed.warnings == ()


def test_defaults_target_port_to_port_and_type_to_cluster_ip() -> None:
    svc = only_service(mutate(SERVICE, "spec.ports", [{"port": 8080}]))

    assert svc.ports == (ServicePort(8080, "8080"),)
    assert svc.type == "ClusterIP"


def test_load_balancer_ip_is_read_on_a_loadbalancer_service_only() -> None:
    balanced = mutate(SERVICE, "spec.type", "LoadBalancer")
    svc = only_service(mutate(balanced, "spec.loadBalancerIP", "127.0.0.10"))
    assert svc.load_balancer_ip == "127.0.0.10"

    cluster = mutate(SERVICE, "spec.loadBalancerIP", "10.0.0.1")
    assert "applies to a LoadBalancer Service only" in error(cluster, file="service.yaml")


def test_named_target_port_multiple_ports_and_node_port() -> None:
    ports = [
        {"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
        {"name": "metrics", "port": 9090, "targetPort": 9100, "protocol": "TCP"},
    ]
    doc = mutate(mutate(SERVICE, "spec.ports", ports), "spec.type", "NodePort")

    svc = only_service(doc)

    assert svc.ports == (
        ServicePort(80, "http", "TCP", "http", 30080),
        ServicePort(9090, "9100", "TCP", "metrics", 0),
    )
    assert svc.type == "NodePort"


def test_service_without_selector_is_allowed() -> None:
    assert only_service(mutate(SERVICE, "spec.selector")).selector == {}


def test_status_is_ignored_and_unsupported_fields_warn() -> None:
    doc = mutate(SERVICE, "status", {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}})
    doc = mutate(doc, "spec.clusterIP", "10.96.0.10")
    doc = mutate(doc, "spec.sessionAffinity", "ClientIP")

    parsed = parse(doc, file="service.yaml")

    assert parsed.warnings == (
        PREFIX + 'Service "web": spec.sessionAffinity: not supported yet, ignored',
    )
    # A fixed address is a request the master honours or refuses (master/app/clusterip.py).
    (svc,) = parsed.objects
    assert isinstance(svc, Service) and (svc.cluster_ip, svc.headless) == ("10.96.0.10", False)


def test_cluster_ips_is_read_like_cluster_ip_and_none_is_headless() -> None:
    listed = parse(mutate(SERVICE, "spec.clusterIPs", ["10.96.0.20"]), file="service.yaml")
    headless = parse(mutate(SERVICE, "spec.clusterIP", "None"), file="service.yaml")

    services = [s for s in (*listed.objects, *headless.objects) if isinstance(s, Service)]
    assert [(s.cluster_ip, s.headless) for s in services] == [("10.96.0.20", False), ("None", True)]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("metadata.name", "a" * 65, "metadata.name: must be at most 63 characters, got 65"),
        ("metadata.name", "1web", "metadata.name: must be a DNS-1035 label"),
        ("metadata.name", "web.app", "metadata.name: must be a DNS-1035 label"),
        ("metadata.namespace", "kube.system", "metadata.namespace: must be a DNS-1123 label"),
        ("spec.ports", [], "spec.ports: is required (at least one port)"),
        ("spec.ports", None, "spec.ports: is required (at least one port)"),
        ("spec.ports", {"port": 80}, "spec.ports: must be a list, got a map"),
        ("spec.ports[0].port", 0, "spec.ports[0].port: must be an integer from 1 to 65535, got 0"),
        ("spec.ports[0].port", -1, "spec.ports[0].port: must be an integer from 1 to 65535"),
        ("spec.ports[0].port", 65536, "port: must be an integer from 1 to 65535, got 65536"),
        ("spec.ports[0].targetPort", 0, "spec.ports[0].targetPort: must be an integer from 1"),
        ("spec.ports[0].targetPort", "80", "spec.ports[0].targetPort: must contain at least one"),
        ("spec.ports[0].targetPort", [80], "spec.ports[0].targetPort: must be a port number"),
        ("spec.ports[0].protocol", "SCTP", "spec.ports[0].protocol: SCTP is not supported yet"),
        ("spec.ports[0].protocol", "HTTP", 'spec.ports[0].protocol: must be one of "TCP", "UDP"'),
        ("spec.ports[0].nodePort", "x", "spec.ports[0].nodePort: must be an integer"),
        ("spec.ports[0].prot", 1, 'spec.ports[0].prot: unknown field (did you mean "port"?)'),
        ("spec.type", "ExternalName", "spec.type: ExternalName is not supported yet"),
        ("spec.type", "Headless", 'spec.type: must be one of "ClusterIP", "LoadBalancer"'),
        ("spec.selector", {"app": ["web"]}, "spec.selector.app: must be a string, got a list"),
        ("spec.selectr", {}, 'spec.selectr: unknown field (did you mean "selector"?)'),
        ("apiVersion", "apps/v1", 'apiVersion: must be "v1" for kind Service, got "apps/v1"'),
        ("spec.loadBalancerIP", "web", 'spec.loadBalancerIP: must be an IP address, got "web"'),
        ("spec.clusterIP", "web", 'spec.clusterIP: must be an IP address, "None" or empty'),
        ("spec.clusterIPs", ["10.96.0.1", "fd00::1"], "spec.clusterIPs: dual-stack Services"),
    ],
)
def test_invalid_service_is_refused_with_one_sentence(path: str, value: Any, expected: str) -> None:
    message = error(mutate(SERVICE, path, value), file="service.yaml")

    assert message.startswith(PREFIX)
    assert expected in message


def test_udp_ports_are_accepted_and_one_number_may_serve_both_protocols() -> None:
    dns = [
        {"port": 53, "name": "dns", "protocol": "UDP"},
        {"port": 53, "name": "dns-tcp", "protocol": "TCP"},
    ]
    (svc,) = parse(mutate(SERVICE, "spec.ports", dns), file="service.yaml").objects

    assert isinstance(svc, Service)
    assert [(p.port, p.protocol) for p in svc.ports] == [(53, "UDP"), (53, "TCP")]


def test_the_same_udp_port_twice_is_refused_naming_the_protocol() -> None:
    twice = [
        {"port": 53, "name": "a", "protocol": "UDP"},
        {"port": 53, "name": "b", "protocol": "UDP"},
    ]

    assert error(mutate(SERVICE, "spec.ports", twice), file="service.yaml") == (
        PREFIX + "spec.ports[1].port: duplicate port 53/UDP"
    )


def test_several_ports_need_unique_names_and_numbers() -> None:
    unnamed = mutate(SERVICE, "spec.ports", [{"port": 80}, {"port": 81}])
    a80, a81, b80 = {"port": 80, "name": "a"}, {"port": 81, "name": "a"}, {"port": 80, "name": "b"}
    same_name = mutate(SERVICE, "spec.ports", [a80, a81])
    same_port = mutate(SERVICE, "spec.ports", [a80, b80])

    assert error(unnamed, file="service.yaml") == (
        PREFIX + "spec.ports[0].name: is required when a Service has more than one port"
    )
    assert error(same_name, file="service.yaml") == (
        PREFIX + 'spec.ports[1].name: duplicate port name "a"'
    )
    assert error(same_port, file="service.yaml") == (
        PREFIX + "spec.ports[1].port: duplicate port 80/TCP"
    )


def test_publish_not_ready_addresses_is_read_and_must_be_a_boolean() -> None:
    svc = only_service(mutate(SERVICE, "spec.publishNotReadyAddresses", True))

    assert svc.publish_not_ready
    assert not only_service(SERVICE).publish_not_ready
    assert error(mutate(SERVICE, "spec.publishNotReadyAddresses", "yes"), file="service.yaml") == (
        PREFIX + 'spec.publishNotReadyAddresses: must be true or false, got "yes"'
    )


def test_allocate_load_balancer_node_ports_is_read_and_must_be_a_boolean() -> None:
    svc = only_service(mutate(SERVICE, "spec.allocateLoadBalancerNodePorts", False))

    assert svc.allocate_node_ports is False
    assert only_service(SERVICE).allocate_node_ports is None
    bad = mutate(SERVICE, "spec.allocateLoadBalancerNodePorts", "no")
    assert error(bad, file="service.yaml") == (
        PREFIX + 'spec.allocateLoadBalancerNodePorts: must be true or false, got "no"'
    )
