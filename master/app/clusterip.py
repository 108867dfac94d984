"""Cluster IPs: one virtual address per Service from the service range (pure).

Kubernetes gives every ClusterIP, NodePort and LoadBalancer Service an address
of its own from `--service-cluster-ip-range` (default 10.96.0.0/12); the node
proxies on every machine (agent/nodeproxy) answer on it, so any number of
Services can use port 80 or 6379. pinnace does the same with `--service-cidr`.

The address is stored on the Service (`spec.clusterIP`), so it is stable across
master restarts and failovers: allocation reads what is taken from the stored
Services and nothing else. As in Kubernetes, the bottom of the range (16 to 256
addresses, a sixteenth of it) is kept for addresses users ask for
(`spec.clusterIP: 10.96.0.10` for a DNS Service, say) and dynamic allocation
takes the lowest free address above it, falling back to the bottom band only
when the top is full. A headless Service (`clusterIP: None`) gets no address.

Flow: apply plans its objects (master/app/apply.py) -> `assign_cluster_ips`
gives each created or configured Service its address (or refuses the whole
apply with one sentence) -> the Services are stored with it. A Service deleted
frees its address with it (nothing else holds it).
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterable
from dataclasses import replace

from master.model import HEADLESS, Service

ServiceRange = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClusterIpError(ValueError):
    """A Service's requested address cannot be given, or none is left: one sentence."""


def parse_service_cidr(text: str) -> ServiceRange:
    """`--service-cidr`: a network with at least 8 addresses, as one sentence when not."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise ClusterIpError(f"--service-cidr {text}: not a network in CIDR form ({e})") from None
    if network.num_addresses < 8:
        raise ClusterIpError(
            f"--service-cidr {text}: too small ({network.num_addresses} addresses); "
            "give at least a /29 (Kubernetes' default is 10.96.0.0/12)"
        )
    if network.num_addresses > 2**20:
        raise ClusterIpError(
            f"--service-cidr {text}: too large ({network.num_addresses} addresses); "
            "give at most 2^20 addresses (a /12 for IPv4, a /108 for IPv6)"
        )
    return network


def static_band(network: ServiceRange) -> int:
    """How many addresses at the bottom are kept for requested ones (Kubernetes' rule)."""
    return min(max(16, network.num_addresses // 16), 256)


def usable(network: ServiceRange, address: str) -> bool:
    """Whether `address` is one a Service may hold: inside, not the network's first or
    (IPv4) broadcast address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version != network.version or ip not in network:
        return False
    if ip == network.network_address:
        return False
    return not (network.version == 4 and ip == network.broadcast_address)


def _first_free(network: ServiceRange, taken: set[str]) -> str | None:
    base = int(network.network_address)
    last = network.num_addresses - (2 if network.version == 4 else 1)
    band = min(static_band(network), last + 1)
    for offset in itertools.chain(range(band, last + 1), range(1, band)):
        candidate = str(ipaddress.ip_address(base + offset))
        if candidate not in taken:
            return candidate
    return None


def needs_address(svc: Service) -> bool:
    return not svc.headless


def assign_cluster_ip(
    svc: Service, previous: Service | None, taken: set[str], network: ServiceRange
) -> Service:
    """`svc` (as planned by apply) with its cluster IP; raises ClusterIpError.

    `svc.cluster_ip` holds what the manifest asked for ("" for any). A re-applied Service
    keeps the address it has; asking for another one is refused as Kubernetes refuses it
    (the field is immutable). `taken` holds every other Service's address.
    """
    where = f"service/{svc.meta.name}: spec.clusterIP"
    if svc.headless:
        return replace(svc, cluster_ip=HEADLESS)
    kept = previous.cluster_ip if previous is not None and not previous.headless else ""
    if kept and usable(network, kept):
        if svc.cluster_ip and svc.cluster_ip != kept:
            raise ClusterIpError(
                f"{where}: {svc.cluster_ip} may not replace {kept} (the field is immutable; "
                "delete the Service first to change its address)"
            )
        return replace(svc, cluster_ip=kept)
    wanted = svc.cluster_ip
    if wanted:
        if not usable(network, wanted):
            raise ClusterIpError(
                f"{where}: {wanted} is not in the service range {network} "
                "(leave it out and the master picks one)"
            )
        if wanted in taken:
            raise ClusterIpError(
                f"{where}: {wanted} is already allocated to another Service "
                "(choose another address or leave it out)"
            )
        return replace(svc, cluster_ip=wanted)
    free = _first_free(network, taken)
    if free is None:
        raise ClusterIpError(
            f"{where}: no address left in the service range {network} "
            "(delete a Service or start the master with a larger --service-cidr)"
        )
    return replace(svc, cluster_ip=free)


def taken_addresses(services: Iterable[Service], network: ServiceRange) -> set[str]:
    """The addresses stored Services hold in the range."""
    return {s.cluster_ip for s in services if not s.headless and usable(network, s.cluster_ip)}


def repair_cluster_ips(services: Iterable[Service], network: ServiceRange) -> list[Service]:
    """Services (oldest first) that hold no address of the range yet -- stored by a master
    before cluster IPs, or before `--service-cidr` changed -- each with a new one."""
    ordered = sorted(services, key=lambda s: (s.meta.created_at, s.meta.name))
    taken = taken_addresses(ordered, network)
    fixed = []
    for svc in ordered:
        if svc.headless:
            if svc.cluster_ip != HEADLESS:
                fixed.append(replace(svc, cluster_ip=HEADLESS))
            continue
        if usable(network, svc.cluster_ip):
            continue
        try:
            new = assign_cluster_ip(replace(svc, cluster_ip=""), None, taken, network)
        except ClusterIpError:
            continue
        taken.add(new.cluster_ip)
        fixed.append(new)
    return fixed
