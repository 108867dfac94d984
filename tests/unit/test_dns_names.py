"""The cluster's names (issue 17 point 3): the master's table and the agent's dnsmasq files."""

from __future__ import annotations

from pathlib import Path

from agent.dns.address import derived_address
from agent.dns.render import DnsmasqConfig, DnsName, render_config, render_hosts
from master.app.dnsrecords import DnsRecord, dns_records
from master.model import (
    Container,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    PodTemplate,
    Service,
    ServicePort,
    StatefulSet,
)

SPEC = PodSpec((Container("c", "pinnace/httpd"),))


def _pod(name: str, ip: str, ready: bool = True, owner: str = "", app: str = "db") -> Pod:
    status = PodStatus(host_ip=ip, ready=ready)
    return Pod(ObjectMeta(name, labels={"app": app}), SPEC, owner=owner, status=status)


def test_services_are_named_by_cluster_ip_and_headless_ones_by_ready_pods() -> None:
    port = (ServicePort(80, "80"),)
    web = Service(ObjectMeta("web"), {"app": "web"}, port, cluster_ip="10.96.0.5")
    db = Service(ObjectMeta("db"), {"app": "db"}, port, cluster_ip="None", headless=True)
    pending = Service(ObjectMeta("pending"), {"app": "x"}, port)
    pods = [
        _pod("db-0", "172.17.0.3", owner="StatefulSet/db"),
        _pod("db-1", "172.17.0.4", owner="StatefulSet/db"),
        _pod("db-2", "172.17.0.5", ready=False, owner="StatefulSet/db"),
        _pod("other", "172.17.0.6"),
        _pod("web-1", "172.17.0.7", app="web"),
    ]
    sts = StatefulSet(ObjectMeta("db"), 3, {"app": "db"}, PodTemplate({}, SPEC), service_name="db")

    table = dns_records([web, db, pending], pods, [sts])

    assert table == (
        DnsRecord("default", "db", "", ("172.17.0.3", "172.17.0.4", "172.17.0.6")),
        DnsRecord("default", "db", "db-0", ("172.17.0.3",)),
        DnsRecord("default", "db", "db-1", ("172.17.0.4",)),
        DnsRecord("default", "web", "", ("10.96.0.5",)),
    )


def test_hosts_file_has_full_names_under_the_agents_domain() -> None:
    names = [
        DnsName("default", "web", "", ("10.96.0.5",)),
        DnsName("shop", "db", "db-0", ("172.17.0.3",)),
    ]

    text = render_hosts(names, "cluster.local")

    assert text.splitlines()[1:] == [
        "10.96.0.5 web.default.svc.cluster.local",
        "172.17.0.3 db-0.db.shop.svc.cluster.local",
    ]
    assert render_hosts(reversed(names), "cluster.local") == text


def test_config_listens_on_the_node_address_only_and_keeps_the_domain_local() -> None:
    conf = render_config(
        DnsmasqConfig("n1", "169.254.7.9", "cluster.local", Path("/d/hosts"), Path("/d/pid"))
    ).splitlines()

    for line in (
        "listen-address=169.254.7.9",
        "bind-interfaces",
        "port=53",
        "hostsdir=/d/hosts",
        "local=/cluster.local/",
        "no-hosts",
    ):
        assert line in conf


def test_derived_addresses_are_link_local_stable_and_differ_by_node() -> None:
    addresses = {derived_address(f"node-{i}") for i in range(50)}

    assert derived_address("node-1") == derived_address("node-1")
    assert len(addresses) == 50
    assert all(a.startswith("169.254.") and a != "169.254.169.254" for a in addresses)
