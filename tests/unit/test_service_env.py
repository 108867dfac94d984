"""Service environment variables (issue 17 point 4): the kubelet's names, values and rules."""

from __future__ import annotations

from agent.containers import container_config
from agent.model import ContainerSpec, EnvVar, PodAssignment, PodSpec
from master.app.servicenv import service_env
from master.model import ObjectMeta, Service, ServicePort


def _svc(name: str, ip: str, *ports: ServicePort, headless: bool = False) -> Service:
    return Service(ObjectMeta(name), {"app": name}, ports, cluster_ip=ip, headless=headless)


def test_a_service_gives_the_kubelets_variables_in_its_order() -> None:
    # What `env` shows in a Kubernetes pod for this Service (the kubelet's envvars tests).
    svc = _svc(
        "redis-leader",
        "10.96.0.11",
        ServicePort(6379, "6379", name="redis"),
        ServicePort(53, "53", protocol="UDP", name="dns-udp"),
    )

    assert service_env("default", True, [svc]) == (
        ("REDIS_LEADER_SERVICE_HOST", "10.96.0.11"),
        ("REDIS_LEADER_SERVICE_PORT", "6379"),
        ("REDIS_LEADER_SERVICE_PORT_REDIS", "6379"),
        ("REDIS_LEADER_SERVICE_PORT_DNS_UDP", "53"),
        ("REDIS_LEADER_PORT", "tcp://10.96.0.11:6379"),
        ("REDIS_LEADER_PORT_6379_TCP", "tcp://10.96.0.11:6379"),
        ("REDIS_LEADER_PORT_6379_TCP_PROTO", "tcp"),
        ("REDIS_LEADER_PORT_6379_TCP_PORT", "6379"),
        ("REDIS_LEADER_PORT_6379_TCP_ADDR", "10.96.0.11"),
        ("REDIS_LEADER_PORT_53_UDP", "udp://10.96.0.11:53"),
        ("REDIS_LEADER_PORT_53_UDP_PROTO", "udp"),
        ("REDIS_LEADER_PORT_53_UDP_PORT", "53"),
        ("REDIS_LEADER_PORT_53_UDP_ADDR", "10.96.0.11"),
    )


def test_an_unnamed_single_port_has_no_named_variable() -> None:
    names = [
        name
        for name, _ in service_env(
            "default", True, [_svc("web", "10.96.0.5", ServicePort(80, "8080"))]
        )
    ]

    assert names == [
        "WEB_SERVICE_HOST",
        "WEB_SERVICE_PORT",
        "WEB_PORT",
        "WEB_PORT_80_TCP",
        "WEB_PORT_80_TCP_PROTO",
        "WEB_PORT_80_TCP_PORT",
        "WEB_PORT_80_TCP_ADDR",
    ]


def test_headless_and_addressless_services_give_nothing() -> None:
    port = ServicePort(80, "80")
    services = [
        _svc("headless", "None", port, headless=True),
        _svc("pending", "", port),
        _svc("web", "10.96.0.5", port),
    ]

    names = {name.split("_")[0] for name, _ in service_env("default", True, services)}

    assert names == {"WEB"}


def test_enable_service_links_false_drops_all_but_the_masters_service() -> None:
    port = ServicePort(443, "6443", name="https")
    services = [_svc("kubernetes", "10.96.0.1", port), _svc("web", "10.96.0.5", port)]

    off = dict(service_env("default", False, services))
    on = dict(service_env("default", True, services))

    assert off["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert not any(name.startswith("WEB_") for name in off)
    assert on["WEB_SERVICE_PORT_HTTPS"] == "443"


def test_only_the_pods_namespace_counts() -> None:
    svc = _svc("web", "10.96.0.5", ServicePort(80, "80"))

    assert service_env("other", True, [svc]) == ()


def test_the_agent_puts_them_first_so_the_containers_own_win_and_may_use_them() -> None:
    service = (EnvVar("WEB_SERVICE_HOST", "10.96.0.5", True), EnvVar("MODE", "svc", True))
    own = (EnvVar("MODE", "mine"), EnvVar("URL", "http://$(WEB_SERVICE_HOST)/"))
    spec = ContainerSpec("app", "pinnace/httpd", env=own)
    pod = PodAssignment("p", 1, PodSpec((spec,), service_env=service))

    env = dict(container_config("n", "127.0.0.1", pod, spec, 0).env)

    assert env == {"WEB_SERVICE_HOST": "10.96.0.5", "MODE": "mine", "URL": "http://10.96.0.5/"}
