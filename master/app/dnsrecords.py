"""The names pods resolve, made from the master's Services and pods (pure).

What CoreDNS's kubernetes plugin serves, as records without the cluster domain
(each agent appends its own, `--cluster-domain`, when it renders them for its
dnsmasq: agent/dns/render.py):

- a Service with a cluster IP: `<svc>.<ns>.svc` -> that address (whatever its type);
- a headless Service: `<svc>.<ns>.svc` -> the address of each ready pod it selects,
  and for the pods of a StatefulSet whose serviceName is that Service,
  `<pod>.<svc>.<ns>.svc` -> that pod's address (the pod's hostname is its name and
  its subdomain the set's service, as Kubernetes gives them).

A pod's address is its `status.hostIP` as pinnace reports it: its own IP on a pod
network, else its node's address. Pods being stopped, not ready or not yet
placed are left out, as Kubernetes leaves them out of a Service's endpoints.
The table is sorted, so an unchanged cluster gives an equal table and the master
sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from master.model import (
    DEFAULT_NAMESPACE,
    STATEFULSET_OWNER,
    Pod,
    Service,
    StatefulSet,
    StoredObject,
    selector_matches,
)


@dataclass(frozen=True, slots=True, order=True)
class DnsRecord:
    namespace: str
    service: str
    # "": the Service's own name; else a pod's hostname under it.
    hostname: str
    addresses: tuple[str, ...]


def namespace_of(obj: StoredObject) -> str:
    # Objects carry a namespace once namespaces exist; until then everything is "default".
    return str(getattr(obj.meta, "namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE)


def serves(pod: Pod) -> bool:
    """Whether the pod's address belongs in its Services' records."""
    return pod.status.ready and not pod.deletion_requested_at and bool(pod.status.host_ip)


def dns_records(
    services: Iterable[Service], pods: Iterable[Pod], statefulsets: Iterable[StatefulSet]
) -> tuple[DnsRecord, ...]:
    services = list(services)
    headless = [s for s in services if s.headless]
    ready = [p for p in pods if serves(p)] if headless else []
    set_service = {
        (namespace_of(s), s.owner): s.service_name for s in statefulsets if s.service_name
    }
    records: list[DnsRecord] = []
    for svc in services:
        ns, name = namespace_of(svc), svc.meta.name
        if not svc.headless:
            if svc.cluster_ip not in ("", "None"):
                records.append(DnsRecord(ns, name, "", (svc.cluster_ip,)))
            continue
        chosen = [
            p
            for p in ready
            if namespace_of(p) == ns and selector_matches(svc.selector, p.meta.labels)
        ]
        if not chosen:
            continue
        records.append(DnsRecord(ns, name, "", tuple(sorted({p.status.host_ip for p in chosen}))))
        for p in chosen:
            if p.owner.startswith(STATEFULSET_OWNER) and set_service.get((ns, p.owner)) == name:
                records.append(DnsRecord(ns, name, p.meta.name, (p.status.host_ip,)))
    return tuple(sorted(records))
