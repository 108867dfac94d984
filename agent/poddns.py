"""A pod's resolv.conf, from its dnsPolicy and dnsConfig, the way the kubelet makes it (pure).

Kubernetes' kubelet (pkg/kubelet/network/dns) gives a pod, by dnsPolicy:
- ClusterFirst (the default; ClusterFirstWithHostNet is the same for a pod without
  hostNetwork, as every pinnace pod is): the node's cluster DNS as the only
  nameserver, the searches `<ns>.svc.<domain> svc.<domain> <domain>` followed by
  the node's own, and `options ndots:5`; so `backend`, `backend.<ns>` and
  `backend.<ns>.svc` find a Service. A node without cluster DNS (agent
  `--cluster-dns none`, or its DNS server could not start) falls back to Default.
- Default: the node's resolv.conf (Docker copies it, leaving out loopback servers
  a container cannot reach).
- None: nothing but the pod's dnsConfig.
dnsConfig is then merged in: its nameservers and searches appended (duplicates
dropped), its options replacing same-named ones; at most 3 nameservers and 32
searches are kept. Docker writes the result into the container's /etc/resolv.conf
(its `dns`, `dns_search` and `dns_opt` create options).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from agent.model import DNSOption, PodDNS

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
CLUSTER_FIRST_OPTIONS = (DNSOption("ndots", "5"),)


@dataclass(frozen=True, slots=True)
class ResolvConf:
    """A resolver configuration: what a resolv.conf says, or what a container gets.
    All empty for a container: Docker's default (the node's resolv.conf)."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


# A container's resolver when nothing is asked: Docker's copy of the node's resolv.conf.
NODE_DEFAULT = ResolvConf()


@dataclass(frozen=True, slots=True)
class NodeDns:
    """This node's cluster DNS: the address its DNS server answers pods on ("": none)
    and the cluster domain (kubelet's --cluster-dns and --cluster-domain)."""

    address: str = ""
    domain: str = "cluster.local"


def parse_resolv_conf(text: str) -> ResolvConf:
    """nameserver, search (and the older domain) and options lines; the last search wins."""
    servers: list[str] = []
    searches: tuple[str, ...] = ()
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = tuple(words[1:])
        elif words[0] == "options":
            options += words[1:]
    return ResolvConf(tuple(servers), searches, tuple(options))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _is_loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server).is_loopback
    except ValueError:
        return True


def _option_text(option: DNSOption) -> str:
    return option.name if option.value is None else f"{option.name}:{option.value}"


def _merge_options(base: Iterable[str], extra: Iterable[DNSOption]) -> tuple[str, ...]:
    """kubelet's mergeDNSOptions: by name, the pod's value replacing the base's."""
    merged: dict[str, str] = {}
    for text in base:
        merged[text.split(":", 1)[0]] = text
    for option in extra:
        merged[option.name] = _option_text(option)
    return tuple(merged.values())


def pod_resolv_conf(dns: PodDNS, namespace: str, node: NodeDns, host: ResolvConf) -> ResolvConf:
    """What the pod's containers resolve with; `host`: the node's own resolv.conf."""
    policy = dns.policy
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet", "") and not node.address:
        policy = "Default"
    has_config = bool(dns.nameservers or dns.searches or dns.options)
    if policy == "None":
        base = ResolvConf()
    elif policy == "Default":
        if not has_config:
            return ResolvConf()  # Docker's own copy of the node's resolv.conf
        base = ResolvConf(
            tuple(s for s in host.nameservers if not _is_loopback(s)), host.searches, host.options
        )
    else:
        domain = node.domain
        base = ResolvConf(
            (node.address,),
            _unique((f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *host.searches)),
            tuple(_option_text(o) for o in CLUSTER_FIRST_OPTIONS),
        )
    return ResolvConf(
        _unique((*base.nameservers, *dns.nameservers))[:MAX_NAMESERVERS],
        _unique((*base.searches, *dns.searches))[:MAX_SEARCHES],
        _merge_options(base.options, dns.options),
    )
