"""Endpoints: which pods a service port reaches, in what state, and in which LB mode."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from master.lb.endpoints import compute_lb_services, lb_mode, pods_released
from master.lb.model import LbSettings
from master.model import (
    Container,
    ContainerPort,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    Service,
    ServicePort,
    ServiceType,
)
from tests.lb_support import render_config


def _pod(
    name: str,
    node: str = "n1",
    ready: bool = True,
    host_port: int = 31000,
    app: str = "web",
    stopping: bool = False,
) -> Pod:
    spec = PodSpec(
        containers=(Container(name="c", image="nginx", ports=(ContainerPort(80, name="http"),)),)
    )
    return Pod(
        meta=ObjectMeta(name=name, labels={"app": app}),
        spec=spec,
        node_name=node,
        deletion_requested_at=5.0 if stopping else 0.0,
        status=PodStatus(
            phase=PodPhase.RUNNING,
            ready=ready,
            host_ip="127.0.0.1",
            port_map={"80/TCP": host_port},
        ),
    )


def _service(target: str = "80", port: int = 80, name: str = "", app_protocol: str = "") -> Service:
    return Service(
        meta=ObjectMeta(name="web"),
        selector={"app": "web"},
        ports=(ServicePort(port, target, name=name, app_protocol=app_protocol),),
        type=ServiceType.LOAD_BALANCER,
    )


def test_selected_ready_pods_become_endpoints_at_their_published_port() -> None:
    pods = [_pod("a", host_port=31001), _pod("b", host_port=31002), _pod("other", app="db")]

    (svc,) = compute_lb_services([_service()], pods, {"n1": True}, port_offset=1000)

    assert svc.listen_port == 1080
    assert [(e.pod, e.address, e.port, e.ready) for e in svc.endpoints] == [
        ("a", "127.0.0.1", 31001, True),
        ("b", "127.0.0.1", 31002, True),
    ]


def test_named_target_port_resolves_to_the_container_port() -> None:
    (svc,) = compute_lb_services([_service(target="http")], [_pod("a")], {"n1": True})

    assert [e.port for e in svc.endpoints] == [31000]


def test_pods_on_not_ready_nodes_or_not_ready_are_not_ready_endpoints() -> None:
    pods = [_pod("a", node="n1"), _pod("b", node="n2"), _pod("c", ready=False)]

    (svc,) = compute_lb_services([_service()], pods, {"n1": True, "n2": False})

    assert {e.pod: e.ready for e in svc.endpoints} == {"a": True, "b": False, "c": False}


def test_publish_not_ready_addresses_makes_every_endpoint_ready_as_kubernetes_lists_it() -> None:
    pods = [_pod("b", node="n2"), _pod("c", ready=False), _pod("d", stopping=True)]
    published = replace(_service(), publish_not_ready=True)

    (svc,) = compute_lb_services([published], pods, {"n1": True, "n2": False})

    assert {e.pod: e.ready for e in svc.endpoints} == {"b": True, "c": True, "d": True}
    assert [e.pod for e in svc.endpoints if e.draining] == ["d"]


def test_a_stopping_pod_drains_and_is_released_only_once_applied_as_draining() -> None:
    serving = compute_lb_services([_service()], [_pod("a")], {"n1": True})
    stopping_pod = _pod("a", stopping=True)
    draining = compute_lb_services([_service()], [stopping_pod], {"n1": True})

    assert draining[0].endpoints[0].draining
    assert pods_released(serving, [stopping_pod]) == set()
    assert pods_released(draining, [stopping_pod]) == {"a"}


def test_unplaced_or_unpublished_pods_are_not_endpoints() -> None:
    unplaced = _pod("a", node="")
    unpublished = _pod("b", host_port=0)

    (svc,) = compute_lb_services([_service()], [unplaced, unpublished], {"n1": True})

    assert svc.endpoints == ()


def test_lb_mode_follows_app_protocol_then_name_then_well_known_ports() -> None:
    assert lb_mode(ServicePort(80, "80")) == "http"
    assert lb_mode(ServicePort(5432, "5432")) == "tcp"
    assert lb_mode(ServicePort(9000, "9000", name="http-api")) == "http"
    assert lb_mode(ServicePort(80, "80", name="metrics")) == "tcp"
    assert lb_mode(ServicePort(80, "80", app_protocol="tcp")) == "tcp"
    assert lb_mode(ServicePort(7000, "7000", app_protocol="HTTP")) == "http"


def test_http_mode_renders_layer7_retries_for_idempotent_methods_only() -> None:
    services = compute_lb_services([_service()], [_pod("a")], {"n1": True})

    cfg = render_config(services, LbSettings("127.0.0.1"), Path("/tmp/x.sock"))

    assert "    mode http" in cfg
    assert "retry-on conn-failure empty-response junk-response" in cfg
    assert "disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }" in cfg


def test_cluster_ip_services_listen_only_on_the_internal_address() -> None:
    lb = _service()
    internal_only = Service(
        meta=ObjectMeta(name="db"),
        selector={"app": "web"},
        ports=(ServicePort(5432, "80"),),
        type=ServiceType.CLUSTER_IP,
    )

    services = compute_lb_services(
        [lb, internal_only], [_pod("a")], {"n1": True}, external="127.0.0.1", internal="127.0.0.2"
    )

    assert {s.name: s.bind_addresses for s in services} == {
        "web": ("127.0.0.1", "127.0.0.2"),
        "db": ("127.0.0.2",),
    }
    wildcard = compute_lb_services([lb], [], {}, external="0.0.0.0", internal="127.0.0.2")
    assert wildcard[0].bind_addresses == ("0.0.0.0",)


def test_headless_service_gets_no_load_balancer_but_lists_its_endpoints() -> None:
    headless = replace(_service(), type=ServiceType.CLUSTER_IP, headless=True)
    pods = [_pod("a", host_port=31001)]

    balanced = compute_lb_services([headless], pods, {"n1": True})
    (listed,) = compute_lb_services([headless], pods, {"n1": True}, include_headless=True)

    assert balanced == []
    assert [(e.pod, e.port, e.ready) for e in listed.endpoints] == [("a", 31001, True)]


def _with_status(pod: Pod, host_ip: str, pod_ip: str) -> Pod:
    return replace(pod, status=replace(pod.status, host_ip=host_ip, pod_ip=pod_ip))


def test_the_masters_haproxy_reaches_loopback_nodes_pods_at_their_own_ip() -> None:
    # A node publishing on 127.0.0.1 runs on the master's machine; its agent reports the
    # pod's IP on a bridge of that machine, where HAProxy reaches it without docker-proxy.
    local = _with_status(_pod("a", host_port=31001), "127.0.0.1", "172.17.0.5")

    (lb,) = compute_lb_services([_service(target="http")], [local], {"n1": True}, pod_ips=True)
    (shown,) = compute_lb_services([_service(target="http")], [local], {"n1": True})

    assert [(e.address, e.port) for e in lb.endpoints] == [("172.17.0.5", 80)]
    # What users see (get endpoints, the node proxies' table) keeps the published port.
    assert [(e.address, e.port) for e in shown.endpoints] == [("127.0.0.1", 31001)]


def test_other_pods_stay_at_their_published_port_for_the_masters_haproxy() -> None:
    remote = _with_status(_pod("a", host_port=31001), "192.0.2.7", "10.244.1.5")
    no_own_ip = _with_status(_pod("b", host_port=31002), "127.0.0.1", "")
    ipv6_local = _with_status(_pod("c", host_port=31003), "::1", "")
    # An agent with --pod-network reports the pod's own IP as its address already.
    pod_network = _with_status(_pod("d", host_port=80), "172.20.0.4", "")

    (lb,) = compute_lb_services(
        [_service()], [remote, no_own_ip, ipv6_local, pod_network], {"n1": True}, pod_ips=True
    )

    assert [(e.address, e.port) for e in lb.endpoints] == [
        ("192.0.2.7", 31001),
        ("127.0.0.1", 31002),
        ("::1", 31003),
        ("172.20.0.4", 80),
    ]
