"""The cluster's names (issue 17 point 3): from the service table to the agent's dnsmasq files."""

from __future__ import annotations

from pathlib import Path

from agent.dns.address import derived_address
from agent.dns.render import (
    DnsmasqConfig,
    DnsName,
    names_from_table,
    render_config,
    render_hosts,
)
from agent.nodeproxy.table import Backend, ServicePort, ServiceTable, TableService


def test_services_are_named_by_cluster_ip_and_headless_ones_by_ready_endpoints() -> None:
    def pod(n: int, host: str = "", subdomain: str = "") -> Backend:
        return Backend(f"172.17.0.{n}", 80, f"p{n}", "node-1", host, subdomain)

    table = ServiceTable(
        1,
        (
            TableService("web", "", cluster_ip="10.96.0.5", ports=(ServicePort("", 80),)),
            TableService("pending", "shop"),
            TableService(
                "db",
                "shop",
                headless=True,
                ports=(
                    ServicePort("a", 80, backends=(pod(3, "db-0", "db"), pod(4, "db-1", "db"))),
                    ServicePort("b", 81, backends=(pod(3, "db-0", "db"), pod(6, "x", "other"))),
                ),
            ),
            TableService("empty", "shop", headless=True, ports=(ServicePort("", 80),)),
            # Published on its node's loopback: a pod would reach itself there.
            TableService(
                "local",
                "shop",
                headless=True,
                ports=(ServicePort("", 80, backends=(Backend("127.0.0.1", 32768, "l-0"),)),),
            ),
        ),
    )

    assert names_from_table(table) == (
        DnsName("default", "web", "", ("10.96.0.5",)),
        DnsName("shop", "db", "", ("172.17.0.3", "172.17.0.4", "172.17.0.6")),
        # The SRV target of port b's endpoint that is no pod of db's own.
        DnsName("shop", "db", "172-17-0-6", ("172.17.0.6",)),
        DnsName("shop", "db", "db-0", ("172.17.0.3",)),
        DnsName("shop", "db", "db-1", ("172.17.0.4",)),
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


def test_named_ports_get_srv_records_headless_ones_per_endpoint_at_its_reached_port() -> None:
    from agent.dns.render import SrvRecord, render_srv, srv_from_table

    table = ServiceTable(
        1,
        (
            TableService(
                "web",
                "",
                cluster_ip="10.96.0.5",
                ports=(ServicePort("http", 80), ServicePort("", 81)),
            ),
            TableService(
                "db",
                "shop",
                headless=True,
                ports=(
                    ServicePort(
                        "pg",
                        5432,
                        backends=(
                            # A StatefulSet's pod, and an unnamed one published on its node.
                            Backend("192.0.2.7", 31001, "db-0", "n1", "db-0", "db"),
                            Backend("192.0.2.8", 31002, "x", "n2"),
                            Backend("127.0.0.1", 31003, "l", "n3"),
                        ),
                    ),
                ),
            ),
        ),
    )

    records = srv_from_table(table)

    assert records == (
        SrvRecord("default", "web", "http", "tcp", "web.default.svc", 80),
        SrvRecord("shop", "db", "pg", "tcp", "192-0-2-8.db.shop.svc", 31002),
        SrvRecord("shop", "db", "pg", "tcp", "db-0.db.shop.svc", 31001),
    )
    # The unnamed endpoint's target has an A record of its own.
    assert DnsName("shop", "db", "192-0-2-8", ("192.0.2.8",)) in names_from_table(table)
    assert render_srv(records[:1], "cluster.local").splitlines()[1:] == [
        "srv-host=_http._tcp.web.default.svc.cluster.local,web.default.svc.cluster.local,80,0,100"
    ]


def test_a_udp_port_gets_its_srv_record_under_udp() -> None:
    from agent.dns.render import SrvRecord, render_srv, srv_from_table

    ports = (ServicePort("dns", 53, "UDP"), ServicePort("dns-tcp", 53, "TCP"))
    table = ServiceTable(
        1, (TableService("kube-dns", "kube-system", cluster_ip="10.96.0.10", ports=ports),)
    )

    records = srv_from_table(table)

    assert (
        SrvRecord("kube-system", "kube-dns", "dns", "udp", "kube-dns.kube-system.svc", 53)
        in records
    )
    assert "srv-host=_dns._udp.kube-dns.kube-system.svc.cluster.local," in render_srv(
        records, "cluster.local"
    )
