"""A pod's environment as Kubernetes computes it, resolved for the node that runs it (pure).

Where: the master resolves references (ConfigMap and Secret keys, fields of the
pod, resources) each time it sends a node its assignment set, and sends the
values over that node's mTLS session only. The agent keeps them in memory, hands
them to the container engine, and never writes them to its state dir; Secret
values never reach a node that runs no pod using them, nor the master's store
in plain text (pods keep the references, Secrets are sealed at rest). `$(VAR)`
references stay as written: the agent expands them when it creates a container,
as the kubelet does, so the values it must expand with are the ones it was sent.

Order and rules follow the kubelet: every `envFrom` source first (keys that are
not valid variable names are skipped), then `env` in order (a later variable
replaces an earlier one of the same name; the agent folds the list). A missing
ConfigMap, Secret or key that is not `optional` holds the container back: its
`error` is the kubelet's sentence and the pod waits in CreateContainerConfigError
until the object appears. Values are resolved again for every send, so a changed
ConfigMap reaches containers that start later (a restart, a new pod of a
rollout) but never restarts one that runs: the agent ignores resolved values
when it decides whether a container is stale.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from master.manifest.quantities import QuantityError, parse_quantity_cpu, parse_quantity_memory
from master.model import (
    ConfigMap,
    Container,
    EnvVarSource,
    Node,
    Pod,
    Secret,
    StoredObject,
)

Lookup = Callable[[str, str], StoredObject | None]
_SUBSCRIPTED = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]\Z")
_ENV_NAME = re.compile(r"^[ -<>-~]+\Z")  # printable ASCII other than '='


@dataclass(frozen=True, slots=True)
class ResolvedVar:
    name: str
    value: str
    # True when the value came from a reference (it is final, never $(VAR)-expanded,
    # and the agent leaves it out of the container's identity).
    from_source: bool


@dataclass(frozen=True, slots=True)
class ResolvedEnv:
    variables: tuple[ResolvedVar, ...]
    # Why the container cannot be created yet (CreateContainerConfigError); "" when it can.
    error: str = ""


class _Missing(Exception):
    pass


def _decode(secret_value: str) -> str:
    return base64.b64decode(secret_value).decode("utf-8", errors="replace")


def _source_data(kind: str, name: str, optional: bool, lookup: Lookup) -> dict[str, str] | None:
    """A ConfigMap's data or a Secret's decoded data; None when optional and missing."""
    if kind in ("configMapRef", "configMapKeyRef"):
        cm = lookup("ConfigMap", name)
        if isinstance(cm, ConfigMap):
            return dict(cm.data)
        if optional:
            return None
        raise _Missing(f'configmap "{name}" not found')
    secret = lookup("Secret", name)
    if isinstance(secret, Secret):
        return {k: _decode(v) for k, v in secret.data.items()}
    if optional:
        return None
    raise _Missing(f'secret "{name}" not found')


def field_value(pod: Pod, path: str, node: Node | None) -> str:
    address = node.address if node is not None else pod.status.host_ip
    simple = {
        "metadata.name": pod.meta.name,
        "metadata.namespace": pod.meta.namespace,
        "metadata.uid": pod.meta.uid,
        "spec.nodeName": pod.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name or "default",
        # A pod's address in pinnace is its node's: ports are published there.
        "status.hostIP": address,
        "status.hostIPs": address,
        "status.podIP": address,
        "status.podIPs": address,
    }
    if path in simple:
        return simple[path]
    match = _SUBSCRIPTED.match(path)
    if match is None:
        return ""
    source = pod.meta.labels if match.group(1) == "labels" else pod.meta.annotations
    return source.get(match.group(2), "")


def resource_value(pod: Pod, container: Container, ref: EnvVarSource, node: Node | None) -> str:
    target = container
    if ref.container_name:
        target = next((c for c in pod.spec.containers if c.name == ref.container_name), container)
    which, _, resource = ref.resource.partition(".")
    amounts = target.limits if which == "limits" else target.requests
    cpu = resource == "cpu"
    amount = amounts.cpu_millis if cpu else amounts.memory_bytes
    if which == "limits" and amount == 0 and node is not None:
        # No limit: the node's allocatable, as the kubelet reports it.
        amount = node.allocatable.cpu_millis if cpu else node.allocatable.memory_bytes
    try:
        if cpu:
            divisor = parse_quantity_cpu(ref.divisor or "1")
        else:
            divisor = parse_quantity_memory(ref.divisor or "1")
    except QuantityError:
        divisor = 1000 if cpu else 1
    return str(math.ceil(amount / max(divisor, 1)))


def _value(
    pod: Pod, container: Container, ref: EnvVarSource, node: Node | None, lookup: Lookup
) -> str | None:
    if ref.kind == "fieldRef":
        return field_value(pod, ref.field_path, node)
    if ref.kind == "resourceFieldRef":
        return resource_value(pod, container, ref, node)
    data = _source_data(ref.kind, ref.name, ref.optional, lookup)
    if data is None:
        return None
    if ref.key in data:
        return data[ref.key]
    if ref.optional:
        return None
    what = "ConfigMap" if ref.kind == "configMapKeyRef" else "Secret"
    raise _Missing(f"couldn't find key {ref.key} in {what} {pod.meta.namespace}/{ref.name}")


def resolve_container_env(
    pod: Pod, container: Container, lookup: Lookup, node: Node | None
) -> ResolvedEnv:
    """The variables to send for one container, or why it cannot start yet."""
    variables: list[ResolvedVar] = []
    try:
        for source in container.env_from:
            data = _source_data(source.kind, source.name, source.optional, lookup) or {}
            for key in sorted(data):
                name = source.prefix + key
                if _ENV_NAME.match(name):
                    variables.append(ResolvedVar(name, data[key], True))
        for var in container.env:
            if var.value_from is None:
                variables.append(ResolvedVar(var.name, var.value, False))
                continue
            value = _value(pod, container, var.value_from, node, lookup)
            if value is not None:
                variables.append(ResolvedVar(var.name, value, True))
    except _Missing as e:
        return ResolvedEnv((), str(e))
    # In order, repeats included: the agent folds them as the kubelet does, expanding
    # each plain value with the variables defined before it.
    return ResolvedEnv(tuple(variables))


def references(pod: Pod) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod's environment reads."""
    found: set[tuple[str, str]] = set()
    for c in pod.spec.containers:
        for source in c.env_from:
            found.add(("ConfigMap" if source.kind == "configMapRef" else "Secret", source.name))
        for var in c.env:
            ref = var.value_from
            if ref is not None and ref.kind in ("configMapKeyRef", "secretKeyRef"):
                found.add(("ConfigMap" if ref.kind == "configMapKeyRef" else "Secret", ref.name))
    return found
