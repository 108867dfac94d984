"""spec.template.spec of a Deployment: containers, their ports, env, resources and probes.

The result is the model's PodSpec, with quantities already in millicores and
bytes. Kubernetes' defaulting applies where it changes what runs: a container
that sets only limits gets the same requests (so the scheduler reserves what
the container may use), ports default to TCP, imagePullPolicy defaults to
Always for `:latest` and untagged images and to IfNotPresent otherwise.
Pod-wide rules are checked after every container is read: unique container
names, unique port names, and no containerPort/protocol pair twice in one pod.
"""

from __future__ import annotations

from typing import Any

from master.manifest.dns import parse_dns, parse_enable_service_links
from master.manifest.env import parse_env, parse_env_from
from master.manifest.errors import Where, describe
from master.manifest.fields import (
    as_int,
    as_list,
    as_map,
    as_str,
    as_str_list,
    check_fields,
    is_empty,
    one_of,
    require,
)
from master.manifest.names import (
    check_dns1123_label,
    check_dns1123_subdomain,
    check_port_name,
)
from master.manifest.probes import parse_probe
from master.manifest.quantities import (
    QuantityError,
    format_cpu,
    format_memory,
    parse_quantity_cpu,
    parse_quantity_memory,
)
from master.manifest.security import parse_security_context
from master.manifest.volumes import parse_volume_mounts, parse_volumes
from master.model import Container, ContainerPort, PodSpec, Resources, RestartPolicy, Volume

POD_SUPPORTED = (
    "containers", "volumes", "restartPolicy", "terminationGracePeriodSeconds", "serviceAccountName",
    "serviceAccount", "automountServiceAccountToken", "dnsPolicy", "dnsConfig",
    "enableServiceLinks", "securityContext",
)  # fmt: skip
POD_UNSUPPORTED = (
    "initContainers", "ephemeralContainers", "activeDeadlineSeconds",
    "nodeSelector", "nodeName", "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace",
    "imagePullSecrets", "hostname", "subdomain", "affinity", "schedulerName", "tolerations",
    "hostAliases", "priorityClassName", "priority", "readinessGates",
    "runtimeClassName", "preemptionPolicy", "overhead",
    "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
    "resourceClaims", "resources",
)  # fmt: skip
CONTAINER_SUPPORTED = (
    "name", "image", "command", "args", "env", "envFrom", "ports", "resources", "imagePullPolicy",
    "readinessProbe", "livenessProbe", "volumeMounts", "stdin", "stdinOnce", "tty",
    "securityContext",
)  # fmt: skip
CONTAINER_UNSUPPORTED = (
    "workingDir", "resizePolicy", "restartPolicy", "volumeDevices",
    "startupProbe", "lifecycle", "terminationMessagePath",
    "terminationMessagePolicy",
)  # fmt: skip
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP")


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always for a `:latest` or untagged image, else IfNotPresent.

    An image pinned by digest (`name@sha256:...`) never changes, so IfNotPresent.
    """
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _parse_ports(value: Any, where: Where) -> tuple[ContainerPort, ...]:
    ports: list[ContainerPort] = []
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        data = as_map(item, at)
        check_fields(data, at, ("containerPort", "protocol", "name", "hostPort"), ("hostIP",))
        port = as_int(require(data, "containerPort", at), at.key("containerPort"), 1, 65535)
        protocol = "TCP"
        if data.get("protocol") is not None:
            if data["protocol"] == "SCTP":
                raise at.key("protocol").error('SCTP is not supported yet; use "TCP" or "UDP"')
            protocol = one_of(data["protocol"], at.key("protocol"), PROTOCOLS)
        name = ""
        if data.get("name") is not None:
            name = as_str(data["name"], at.key("name"))
            check_port_name(name, at.key("name"))
        host_port = 0
        if data.get("hostPort") is not None:
            host_port = as_int(data["hostPort"], at.key("hostPort"), 0, 65535)
        ports.append(ContainerPort(port, protocol, name, host_port))
    return tuple(ports)


def _parse_amounts(value: Any, where: Where) -> tuple[Resources, set[str]]:
    """A requests or limits map; returns the amounts and which of cpu/memory were set."""
    data = as_map(value, where)
    cpu = memory = 0
    present: set[str] = set()
    for key, amount in data.items():
        at = where.key(key)
        try:
            if key == "cpu":
                cpu = parse_quantity_cpu(amount)
            elif key == "memory":
                memory = parse_quantity_memory(amount)
            else:
                # Any resource name is legal in Kubernetes (hugepages-2Mi, vendor/gpu).
                at.warn("not supported yet, ignored")
                continue
        except QuantityError as exc:
            raise at.error(str(exc)) from None
        present.add(key)
    return Resources(cpu, memory), present


def _parse_resources(value: Any, where: Where) -> tuple[Resources, Resources]:
    data = as_map(value, where)
    check_fields(data, where, ("requests", "limits"), ("claims",))
    requests, requested = _parse_amounts(data.get("requests"), where.key("requests"))
    limits, limited = _parse_amounts(data.get("limits"), where.key("limits"))
    # Kubernetes defaults a missing request to the limit.
    if "cpu" in limited and "cpu" not in requested:
        requests = Resources(limits.cpu_millis, requests.memory_bytes)
    if "memory" in limited and "memory" not in requested:
        requests = Resources(requests.cpu_millis, limits.memory_bytes)
    for resource, wanted, allowed, fmt in (
        ("cpu", requests.cpu_millis, limits.cpu_millis, format_cpu),
        ("memory", requests.memory_bytes, limits.memory_bytes, format_memory),
    ):
        if resource in limited and wanted > allowed:
            raise (
                where.key("requests")
                .key(resource)
                .error(
                    f"must be less than or equal to the {resource} limit ({fmt(allowed)}), "
                    f"got {fmt(wanted)}"
                )
            )
    return requests, limits


def _parse_container(
    value: Any,
    where: Where,
    volumes: frozenset[str] = frozenset(),
    left_out: frozenset[str] = frozenset(),
) -> Container:
    data = as_map(value, where)
    check_fields(data, where, CONTAINER_SUPPORTED, CONTAINER_UNSUPPORTED)
    name = as_str(require(data, "name", where), where.key("name"))
    check_dns1123_label(name, where.key("name"))
    image = as_str(require(data, "image", where), where.key("image"))
    if not image.strip():
        raise where.key("image").error("is required")
    if image != image.strip():
        raise where.key("image").error("must not have leading or trailing whitespace")
    requests, limits = _parse_resources(data.get("resources"), where.key("resources"))
    pull = default_pull_policy(image)
    if data.get("imagePullPolicy") is not None:
        pull = one_of(data["imagePullPolicy"], where.key("imagePullPolicy"), PULL_POLICIES)
    command = as_str_list(data.get("command"), where.key("command"))
    args = as_str_list(data.get("args"), where.key("args"))
    env = parse_env(data.get("env"), where.key("env"))
    env_from = parse_env_from(data.get("envFrom"), where.key("envFrom"))
    ports = _parse_ports(data.get("ports"), where.key("ports"))
    probes = {
        key: parse_probe(data[key], where.key(key), liveness=key == "livenessProbe", ports=ports)
        for key in ("readinessProbe", "livenessProbe")
        if data.get(key) is not None
    }
    flags = {}
    for key in ("stdin", "stdinOnce", "tty"):
        flag = data.get(key)
        if flag is not None and not isinstance(flag, bool):
            raise where.key(key).error("must be true or false")
        flags[key] = bool(flag)
    return Container(
        stdin=flags["stdin"],
        stdin_once=flags["stdinOnce"],
        tty=flags["tty"],
        name=name,
        image=image,
        command=command,
        args=args,
        env=env,
        env_from=env_from,
        ports=ports,
        requests=requests,
        limits=limits,
        image_pull_policy=pull,
        readiness_probe=probes.get("readinessProbe"),
        liveness_probe=probes.get("livenessProbe"),
        volume_mounts=parse_volume_mounts(
            data.get("volumeMounts"), where.key("volumeMounts"), volumes, left_out
        ),
        security_context=parse_security_context(
            data.get("securityContext"), where.key("securityContext"), pod=False
        ),
    )


def _check_pod_ports(containers: tuple[Container, ...], where: Where) -> None:
    names: set[str] = set()
    pairs: set[tuple[int, str]] = set()
    host_pairs: set[tuple[int, str]] = set()
    for i, container in enumerate(containers):
        for j, port in enumerate(container.ports):
            at = where.index(i).key("ports").index(j)
            if port.name:
                if port.name in names:
                    raise at.key("name").error(
                        f"duplicate port name {describe(port.name)} in the pod"
                    )
                names.add(port.name)
            pair = (port.container_port, port.protocol)
            if pair in pairs:
                raise at.key("containerPort").error(
                    f"duplicate port {port.container_port}/{port.protocol} in the pod"
                )
            pairs.add(pair)
            if port.host_port:
                host_pair = (port.host_port, port.protocol)
                if host_pair in host_pairs:
                    raise at.key("hostPort").error(
                        f"duplicate host port {port.host_port}/{port.protocol} in the pod"
                    )
                host_pairs.add(host_pair)


def parse_pod_spec(value: Any, where: Where, claim_templates: tuple[str, ...] = ()) -> PodSpec:
    """`claim_templates`: a StatefulSet's volumeClaimTemplates names, which the containers
    may mount as volumes (each pod gets its own claim; they win over same-named volumes)."""
    data = as_map(value, where)
    check_fields(data, where, POD_SUPPORTED, POD_UNSUPPORTED)
    raw_containers = as_list(data.get("containers"), where.key("containers"))
    if is_empty(raw_containers):
        raise where.key("containers").error("is required (at least one container)")
    at = where.key("containers")
    volumes, left_out = parse_volumes(data.get("volumes"), where.key("volumes"))
    if claim_templates:
        volumes = (
            *(v for v in volumes if v.name not in claim_templates),
            *(Volume(name, "persistentVolumeClaim") for name in claim_templates),
        )
    declared = frozenset(v.name for v in volumes)
    containers = tuple(
        _parse_container(c, at.index(i), declared, left_out) for i, c in enumerate(raw_containers)
    )
    seen: set[str] = set()
    for i, container in enumerate(containers):
        if container.name in seen:
            raise (
                at.index(i)
                .key("name")
                .error(f"duplicate container name {describe(container.name)}")
            )
        seen.add(container.name)
    _check_pod_ports(containers, at)
    restart = "Always"
    if data.get("restartPolicy") is not None:
        restart = as_str(data["restartPolicy"], where.key("restartPolicy"))
        if restart != "Always":
            raise where.key("restartPolicy").error(
                f'only "Always" is allowed for a Deployment, got {describe(restart)}'
            )
    grace = 30
    if data.get("terminationGracePeriodSeconds") is not None:
        grace = as_int(
            data["terminationGracePeriodSeconds"], where.key("terminationGracePeriodSeconds"), 0
        )
    dns_policy, dns_config = parse_dns(data, where)
    return PodSpec(
        containers=containers,
        restart_policy=RestartPolicy(restart),
        termination_grace_period_seconds=grace,
        service_account_name=_service_account(data, where),
        volumes=volumes,
        enable_service_links=parse_enable_service_links(data, where),
        dns_policy=dns_policy,
        dns_config=dns_config,
        security_context=parse_security_context(
            data.get("securityContext"), where.key("securityContext"), pod=True
        ),
    )


def _service_account(data: dict[str, Any], where: Where) -> str:
    """serviceAccountName (or its old alias serviceAccount), kept and shown; pinnace mounts no
    token, so automountServiceAccountToken: true is reported and false is what happens."""
    name = ""
    for key in ("serviceAccountName", "serviceAccount"):
        if data.get(key) is not None:
            name = name or as_str(data[key], where.key(key))
            if name:
                check_dns1123_subdomain(name, where.key(key))
    mount = data.get("automountServiceAccountToken")
    if mount is not None and not isinstance(mount, bool):
        raise where.key("automountServiceAccountToken").error("must be true or false")
    if mount:
        where.key("automountServiceAccountToken").warn(
            "not supported yet, ignored (no token is mounted)"
        )
    return name
