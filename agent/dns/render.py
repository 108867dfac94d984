"""What this node's dnsmasq is told: its config and the cluster's names as a hosts file
(pure).

The names come from the master's service table (agent/nodeproxy/table.py), as CoreDNS's
kubernetes plugin makes them: a Service with a cluster IP is `<svc>.<ns>.svc` -> that
address; a headless one is `<svc>.<ns>.svc` -> each ready endpoint's address, and
`<hostname>.<svc>.<ns>.svc` -> one pod's address for an endpoint whose pod has that
hostname and the Service as its subdomain (a StatefulSet's pods). An endpoint's address
is where pinnace reaches the pod: its own IP on a pod network; its own IP on its node's
pod bridge when the master gives nodes pod subnets (--cluster-cidr) and this machine
routes to that node's subnet (`reach`, agent/hostgw); else its node's address.
The agent appends its cluster domain (`--cluster-domain`, Kubernetes' cluster.local) and
writes one hosts file, which dnsmasq re-reads when it changes (`hostsdir`, inotify).
Only the full names are written: a pod's resolv.conf searches `<ns>.svc.<domain>
svc.<domain> <domain>` (agent/poddns.py), so `backend`, `backend.<ns>` and
`backend.<ns>.svc` reach them. Names under the cluster domain that are not in the file
get NXDOMAIN at once (`local=/<domain>/`); every other name goes to the node's own
resolvers (the resolv.conf dnsmasq reads).

SRV records, as CoreDNS makes them, for every named port:
`_<port>._<proto>.<svc>.<ns>.svc` -> `<svc>.<ns>.svc`:<port> for a Service with a cluster
IP; for a headless one, one record per ready endpoint -> `<hostname>.<svc>.<ns>.svc`
(a StatefulSet's pod) or `<a-b-c-d>.<svc>.<ns>.svc` (named after its address, with an
A record of its own) at the port the pod is reached on. In the default networking mode
that port is the pod's published host port on its node's address, so a client that
asks SRV reaches a headless Service's pods on any node even though their container
ports are not where they listen. dnsmasq reads SRV records (`srv-host=`) only from its
config, at start: they are served by a second dnsmasq of their own
(`render_srv_config`), to which the node's forwards `svc.<domain>` (`render_servers`),
replaced whole when they change (agent/dns/srvdns.py) while the node's keeps answering.

dnsmasq listens on the node's DNS address only (`bind-interfaces`, `listen-address`), so
agents sharing one machine each run their own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from agent.nodeproxy.table import Backend, ServiceTable

# Seconds a client may keep an answer (CoreDNS's kubernetes plugin also says 5).
LOCAL_TTL = 5


@dataclass(frozen=True, slots=True, order=True)
class DnsName:
    """One name of the cluster, made from the service table (`names_from_table`)."""

    namespace: str
    service: str
    # "": the Service's own name; else a pod's hostname under it.
    hostname: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True, order=True)
class SrvRecord:
    """`_<port>._<proto>.<service>.<namespace>.svc` -> `target` (relative to the domain)."""

    namespace: str
    service: str
    port_name: str
    protocol: str
    target: str
    port: int


Reach = frozenset[str]


def _where(b: Backend, cluster: str, reach: Reach) -> Backend:
    """The endpoint as this node's pods reach it: at the pod's own address and container
    port when its node's pod subnet is routed from here (see the module's docstring)."""
    if b.node in reach and b.pod_ip and b.target_port and _inside(b.pod_ip, cluster):
        return replace(b, address=b.pod_ip, port=b.target_port)
    return b


def _inside(address: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)
    except ValueError:
        return False


def _reached(table: ServiceTable, reach: Reach) -> ServiceTable:
    """The table with every endpoint where this node's pods reach it."""
    if not reach or not table.cluster_cidr:
        return table
    cluster = table.cluster_cidr
    return replace(
        table,
        services=tuple(
            replace(
                svc,
                ports=tuple(
                    replace(p, backends=tuple(_where(b, cluster, reach) for b in p.backends))
                    for p in svc.ports
                ),
            )
            for svc in table.services
        ),
    )


def _dashed(address: str) -> str:
    """A pod's name from its address, as CoreDNS names unnamed endpoints (10-0-0-1)."""
    return address.replace(".", "-").replace(":", "-")


def srv_from_table(table: ServiceTable, reach: Reach = frozenset()) -> tuple[SrvRecord, ...]:
    """The SRV records of every named Service port (see the module's docstring); `reach`:
    the nodes whose pods this machine reaches at their own addresses."""
    table = _reached(table, reach)
    records: list[SrvRecord] = []
    for svc in table.services:
        namespace = svc.namespace or "default"
        own = f"{svc.name}.{namespace}.svc"
        for port in svc.ports:
            if not port.name:
                continue
            proto = port.protocol.lower()
            if not svc.headless:
                if svc.cluster_ip:
                    records.append(SrvRecord(namespace, svc.name, port.name, proto, own, port.port))
                continue
            for b in port.backends:
                if _is_loopback(b.address):
                    continue
                host = b.hostname if b.hostname and b.subdomain == svc.name else _dashed(b.address)
                target = f"{host}.{own}"
                records.append(SrvRecord(namespace, svc.name, port.name, proto, target, b.port))
    return tuple(sorted(set(records)))


def names_from_table(table: ServiceTable, reach: Reach = frozenset()) -> tuple[DnsName, ...]:
    """The cluster's names (see the module's docstring); `reach` as for srv_from_table."""
    table = _reached(table, reach)
    names: list[DnsName] = []
    for svc in table.services:
        namespace = svc.namespace or "default"
        if not svc.headless:
            if svc.cluster_ip:
                names.append(DnsName(namespace, svc.name, "", (svc.cluster_ip,)))
            continue
        # A loopback address (pods published on a node's 127.0.0.1) would lead a pod to
        # itself: such pods have no address other pods can reach, so no name.
        backends = [b for port in svc.ports for b in port.backends if not _is_loopback(b.address)]
        if backends:
            addresses = tuple(sorted({b.address for b in backends}))
            names.append(DnsName(namespace, svc.name, "", addresses))
        pods = {b.hostname: b.address for b in backends if b.hostname and b.subdomain == svc.name}
        names += [DnsName(namespace, svc.name, host, (pods[host],)) for host in sorted(pods)]
        # The SRV targets of endpoints without a hostname of their own (srv_from_table).
        named_ports = {p.name for p in svc.ports if p.name}
        unnamed = {
            b.address
            for port in svc.ports
            if port.name in named_ports
            for b in port.backends
            if not _is_loopback(b.address) and not (b.hostname and b.subdomain == svc.name)
        }
        names += [DnsName(namespace, svc.name, _dashed(a), (a,)) for a in sorted(unnamed)]
    return tuple(sorted(names))


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True


def fqdn(name: DnsName, domain: str) -> str:
    service = f"{name.service}.{name.namespace}.svc.{domain}"
    return f"{name.hostname}.{service}" if name.hostname else service


def render_hosts(names: Iterable[DnsName], domain: str) -> str:
    """A hosts file: one `address name` line per address, sorted (equal tables, equal files)."""
    lines = sorted({f"{address} {fqdn(n, domain)}" for n in names for address in n.addresses})
    header = f"# The cluster's names under {domain}, from the pinnace master (rewritten).\n"
    return header + "".join(f"{line}\n" for line in lines)


def render_srv(records: Iterable[SrvRecord], domain: str) -> str:
    """dnsmasq config lines, one `srv-host=NAME,TARGET,PORT,PRIORITY,WEIGHT` per record."""
    lines = [
        f"srv-host=_{r.port_name}._{r.protocol}.{r.service}.{r.namespace}.svc.{domain},"
        f"{r.target}.{domain},{r.port},0,100\n"
        for r in sorted(records)
    ]
    return f"# SRV records of the cluster under {domain} (rewritten).\n" + "".join(lines)


@dataclass(frozen=True, slots=True)
class DnsmasqConfig:
    node: str
    address: str
    domain: str
    hosts_dir: Path
    pid_file: Path
    port: int = 53
    # Where the names of the rest of the world are asked: the node's resolvers.
    upstream: str = "/etc/resolv.conf"
    # Where the SRV records' dnsmasq is named (render_servers), re-read on SIGHUP; None:
    # no SRV records (names under the domain not in the hosts file get NXDOMAIN here).
    servers_file: Path | None = None


def render_config(c: DnsmasqConfig) -> str:
    return "\n".join(
        (
            f"# dnsmasq of pinnace agent {c.node}: the cluster DNS of its pods (generated).",
            f"port={c.port}",
            f"listen-address={c.address}",
            "bind-interfaces",
            # Not the machine's /etc/hosts: pods get the cluster's names and the world's.
            "no-hosts",
            f"hostsdir={c.hosts_dir}",
            f"local=/{c.domain}/",
            # A name without a dot that no search completed is not the world's to answer.
            "domain-needed",
            f"local-ttl={LOCAL_TTL}",
            f"resolv-file={c.upstream}",
            f"pid-file={c.pid_file}",
            "cache-size=1000",
            *([f"servers-file={c.servers_file}"] if c.servers_file else []),
            "",
        )
    )


def render_srv_config(node: str, port: int, domain: str, pid_file: Path, records: str) -> str:
    """The SRV records' dnsmasq (agent/dns/srvdns.py): on 127.0.0.1:`port`, nothing but
    `records` (render_srv's lines); every other name under the domain is NXDOMAIN, and it
    asks no one else."""
    return "\n".join(
        (
            f"# dnsmasq of pinnace agent {node}: the cluster's SRV records (generated).",
            f"port={port}",
            "listen-address=127.0.0.1",
            "bind-interfaces",
            "no-hosts",
            "no-resolv",
            f"local=/{domain}/",
            f"local-ttl={LOCAL_TTL}",
            f"pid-file={pid_file}",
            records,
        )
    )


def render_servers(domain: str, port: int) -> str:
    """The node's dnsmasq's servers file: what its hosts file does not answer under
    `svc.<domain>` (the SRV names) is asked of the SRV records' dnsmasq on `port`."""
    return f"server=/svc.{domain}/127.0.0.1#{port}\n"
