"""The Service environment variables a pod's containers start with, as the kubelet sets them (pure).

Kubernetes' kubelet (getServiceEnvVarMap and envvars.FromServices) gives every
container, for each Service of the pod's namespace that has a cluster IP
(headless ones and ones without an address are skipped):

    <SVC>_SERVICE_HOST=<clusterIP>      <SVC>_SERVICE_PORT=<first port>
    <SVC>_SERVICE_PORT_<PORTNAME>=<port>                 (each named port)
    <SVC>_PORT=<proto>://<clusterIP>:<first port>        (Docker links, the first port)
    <SVC>_PORT_<port>_<PROTO>=<proto>://<clusterIP>:<port>
    <SVC>_PORT_<port>_<PROTO>_PROTO|_PORT|_ADDR          (each port)

where <SVC> is the name upper-cased with '-' as '_'. `enableServiceLinks: false`
turns all of them off, except those of the master's own Service (`kubernetes` in
`default`), which every pod gets. The container's own env and envFrom win over
these names, and `$(VAR)` references in them may use these (the agent folds
them first: agent/containers.py). They are values for containers that start
from now on: like the kubelet, pinnace never restarts a container because a
Service appeared, so a pod sees the Services that existed when its containers
were created.
"""

from __future__ import annotations

from collections.abc import Iterable

from master.model import DEFAULT_NAMESPACE, Service

# The API server's own Service, which the kubelet shows to every pod whatever its links.
MASTER_SERVICE = (DEFAULT_NAMESPACE, "kubernetes")


def env_name(name: str) -> str:
    """kubelet's makeEnvVariableName: upper case, '-' as '_' (Service names are DNS labels)."""
    return name.replace("-", "_").upper()


def has_cluster_ip(svc: Service) -> bool:
    """Kubernetes' IsServiceIPSet: an address, not "None" (headless) nor empty."""
    return not svc.headless and svc.cluster_ip not in ("", "None")


def variables_of(svc: Service) -> list[tuple[str, str]]:
    """One Service's variables, in the kubelet's order (envvars.FromServices)."""
    if not has_cluster_ip(svc) or not svc.ports:
        return []
    prefix = env_name(svc.meta.name)
    ip = svc.cluster_ip
    host = f"[{ip}]" if ":" in ip else ip  # net.JoinHostPort
    found = [
        (f"{prefix}_SERVICE_HOST", ip),
        (f"{prefix}_SERVICE_PORT", str(svc.ports[0].port)),
    ]
    found += [
        (f"{prefix}_SERVICE_PORT_{env_name(p.name)}", str(p.port)) for p in svc.ports if p.name
    ]
    for i, p in enumerate(svc.ports):
        protocol = (p.protocol or "TCP").upper()
        url = f"{protocol.lower()}://{host}:{p.port}"
        if i == 0:
            found.append((f"{prefix}_PORT", url))
        each = f"{prefix}_PORT_{p.port}_{protocol}"
        found += [
            (each, url),
            (f"{each}_PROTO", protocol.lower()),
            (f"{each}_PORT", str(p.port)),
            (f"{each}_ADDR", ip),
        ]
    return found


def service_env(
    namespace: str, enable_service_links: bool, services: Iterable[Service]
) -> tuple[tuple[str, str], ...]:
    """The variables for a pod of `namespace`, by Service name then the kubelet's order."""
    chosen: dict[str, Service] = {}
    for svc in services:
        if not has_cluster_ip(svc):
            continue
        where = (svc.meta.namespace, svc.meta.name)
        if where == MASTER_SERVICE:
            chosen.setdefault(svc.meta.name, svc)
        elif where[0] == namespace and enable_service_links:
            chosen[svc.meta.name] = svc
    return tuple(var for name in sorted(chosen) for var in variables_of(chosen[name]))
