"""How a pod's container spec becomes an engine ContainerConfig (pure).

The name and labels are what make the agent restartable: the name
`pinnace-<node>-<pod>-<container>` is unique on a shared engine, and the labels
carry the pod, container, epoch, spec hash, restart count and grace period, so a
fresh agent knows from a list call alone what it runs. Kubernetes' `command`
replaces the image's ENTRYPOINT and `args` its CMD, both `$(VAR)`-expanded with the
container's environment (agent/expansion.py); ports are published on the
advertise address, and so is a port only a probe uses (an agent that cannot reach
the container's own IP probes through the published port; the pod's reported
ports stay the declared ones); limits (never requests) become Docker's
nano_cpus/mem_limit. The pod's Service variables come first in the environment, so the
container's own env and envFrom win over them and `$(VAR)` may name them (as with
the kubelet); its resolv.conf is what agent/poddns.py made of its DNS policy. A
StatefulSet's pod has its own name as hostname, as Kubernetes gives it (programs
read their ordinal from it; `<pod>.<service>` resolves to it: agent/dns/render.py).
"""

from __future__ import annotations

import dataclasses
import hashlib

from agent.expansion import container_env, expand_all
from agent.model import ContainerSpec, PodAssignment, spec_hash
from agent.mounts import container_mounts
from agent.poddns import NODE_DEFAULT, ResolvConf
from agent.probes import probe_ports
from agent.runtime.port import (
    LABEL_CONFIG_HASH,
    LABEL_CONTAINER,
    LABEL_EPOCH,
    LABEL_GRACE,
    LABEL_NODE,
    LABEL_POD_LABEL_PREFIX,
    LABEL_RESTART_COUNT,
    LABEL_SPEC_HASH,
    ContainerConfig,
    PortBinding,
    container_name,
    pod_labels,
)
from agent.security import engine_groups, engine_user
from agent.volume_files import DEFAULT_ROOT
from kernel.names import split_pod_ref

# Kubernetes' limit for a hostname (a DNS label); a longer pod name is cut, as the kubelet
# cuts it, without a trailing '-' or '.'.
HOSTNAME_MAX = 63


def pod_hostname(assignment: PodAssignment) -> str:
    """The pod's hostname: its name (without its namespace: `assignment.name` is a pod_ref),
    cut to a DNS label as the kubelet cuts it."""
    _, name = split_pod_ref(assignment.name)
    return name[:HOSTNAME_MAX].rstrip("-.")


def container_ports(spec: ContainerSpec) -> tuple[PortBinding, ...]:
    """What one container publishes: its declared ports, then the ports only its probes use."""
    return (
        *(PortBinding(p.container_port, p.protocol or "TCP", p.host_port) for p in spec.ports),
        *(PortBinding(port) for port in probe_ports(spec)),
    )


def pod_ports(assignment: PodAssignment) -> tuple[PortBinding, ...]:
    """Every port of the pod's containers, each once: a pod sandbox publishes them all, since
    its containers share its network namespace (agent/runtime/sandbox.py)."""
    seen: dict[str, PortBinding] = {}
    for spec in assignment.spec.containers:
        for binding in container_ports(spec):
            seen.setdefault(binding.key, binding)
    return tuple(seen.values())


def container_config(
    node: str,
    host_ip: str,
    assignment: PodAssignment,
    spec: ContainerSpec,
    restart_count: int,
    files_root: str = DEFAULT_ROOT,
    resolv: ResolvConf = NODE_DEFAULT,
    image_user: str = "",
) -> ContainerConfig:
    """`image_user`: the image's own user, needed only where agent/security.py says so."""
    labels = {f"{LABEL_POD_LABEL_PREFIX}{k}": v for k, v in assignment.labels.items()}
    labels |= {
        LABEL_NODE: node,
        **pod_labels(assignment.name),
        LABEL_CONTAINER: spec.name,
        LABEL_EPOCH: str(assignment.epoch),
        LABEL_SPEC_HASH: spec_hash(spec),
        LABEL_RESTART_COUNT: str(restart_count),
        LABEL_GRACE: str(assignment.spec.termination_grace_period_seconds),
    }
    env = container_env((*assignment.spec.service_env, *spec.env))
    config = ContainerConfig(
        name=container_name(node, assignment.name, spec.name),
        image=spec.image,
        labels=labels,
        entrypoint=expand_all(spec.command, env),
        cmd=expand_all(spec.args, env),
        env=tuple(env.items()),
        ports=container_ports(spec),
        host_ip=host_ip,
        nano_cpus=spec.limits.cpu_millis * 1_000_000,
        mem_limit=spec.limits.memory_bytes,
        mounts=container_mounts(node, assignment, spec, files_root),
        hostname=pod_hostname(assignment),
        dns_servers=resolv.nameservers,
        # Own nameservers but no searches: "." (none), not Docker's copy of the node's.
        dns_search=resolv.searches or ((".",) if resolv.nameservers else ()),
        dns_options=resolv.options,
        stdin_open=spec.stdin,
        stdin_once=spec.stdin_once,
        tty=spec.tty,
        user=engine_user(spec.security, image_user),
        group_add=engine_groups(spec.security),
        read_only=bool(spec.security and spec.security.read_only_root_filesystem),
        pod_ports=pod_ports(assignment),
        pod_containers=len(assignment.spec.containers),
    )
    return dataclasses.replace(config, labels=labels | {LABEL_CONFIG_HASH: config_hash(config)})


def config_hash(config: ContainerConfig) -> str:
    """A digest of what a container is created with, but its name and restart count: equal
    digests mean starting the old container again runs what a new one would (its Service
    variables, DNS, mounts, limits, epoch and spec alike)."""
    labels = {
        k: v for k, v in config.labels.items() if k not in (LABEL_RESTART_COUNT, LABEL_CONFIG_HASH)
    }
    kept = dataclasses.replace(config, name="", labels=dict(sorted(labels.items())))
    return hashlib.sha256(repr(kept).encode()).hexdigest()[:16]
