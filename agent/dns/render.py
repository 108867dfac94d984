"""What this node's dnsmasq is told: its config and the cluster's names as a hosts file
(pure).

The names come from the master's service table (agent/nodeproxy/table.py), as CoreDNS's
kubernetes plugin makes them: a Service with a cluster IP is `<svc>.<ns>.svc` -> that
address; a headless one is `<svc>.<ns>.svc` -> each ready endpoint's address, and
`<hostname>.<svc>.<ns>.svc` -> one pod's address for an endpoint whose pod has that
hostname and the Service as its subdomain (a StatefulSet's pods). An endpoint's address
is where pinnace reaches the pod: its own IP on a pod network, else its node's address.
The agent appends its cluster domain (`--cluster-domain`, Kubernetes' cluster.local) and
writes one hosts file, which dnsmasq re-reads when it changes (`hostsdir`, inotify).
Only the full names are written: a pod's resolv.conf searches `<ns>.svc.<domain>
svc.<domain> <domain>` (agent/poddns.py), so `backend`, `backend.<ns>` and
`backend.<ns>.svc` reach them. Names under the cluster domain that are not in the file
get NXDOMAIN at once (`local=/<domain>/`); every other name goes to the node's own
resolvers (the resolv.conf dnsmasq reads). dnsmasq listens on the node's DNS address
only (`bind-interfaces`, `listen-address`), so agents sharing one machine each run their
own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.nodeproxy.table import ServiceTable

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


def names_from_table(table: ServiceTable) -> tuple[DnsName, ...]:
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
            "",
        )
    )
