"""Kubernetes-shaped ConfigMaps, Secrets, ServiceAccounts and container environments.

Split from master/api/render.py (which renders the workload kinds and calls these).
An env var renders as its manifest said it -- a value, or where the value comes
from -- never the value a reference resolves to; a Secret renders its values
base64-encoded as `kubectl get secret -o yaml` does (tables never show them).
"""

from __future__ import annotations

from typing import Any

from master.model import ConfigMap, EnvFromSource, EnvVar, EnvVarSource, Secret, ServiceAccount

Obj = dict[str, Any]


def _env_source(s: EnvVarSource) -> Obj:
    if s.kind in ("configMapKeyRef", "secretKeyRef"):
        ref: Obj = {"name": s.name, "key": s.key}
        if s.optional:
            ref["optional"] = True
        return {s.kind: ref}
    if s.kind == "fieldRef":
        return {"fieldRef": {"apiVersion": "v1", "fieldPath": s.field_path}}
    resource: Obj = {"resource": s.resource}
    if s.container_name:
        resource["containerName"] = s.container_name
    if s.divisor:
        resource["divisor"] = s.divisor
    return {"resourceFieldRef": resource}


def render_env_var(e: EnvVar) -> Obj:
    """As the manifest said it: a value, or where the value comes from (never the value)."""
    if e.value_from is not None:
        return {"name": e.name, "valueFrom": _env_source(e.value_from)}
    return {"name": e.name, "value": e.value}


def render_env_from(s: EnvFromSource) -> Obj:
    ref: Obj = {"name": s.name}
    if s.optional:
        ref["optional"] = True
    out: Obj = {s.kind: ref}
    if s.prefix:
        out["prefix"] = s.prefix
    return out


def render_config_map(cm: ConfigMap, metadata: Obj) -> Obj:
    out: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if cm.data:
        out["data"] = dict(cm.data)
    if cm.binary_data:
        out["binaryData"] = dict(cm.binary_data)
    if cm.immutable:
        out["immutable"] = True
    return out


def render_secret(secret: Secret, metadata: Obj) -> Obj:
    """As `kubectl get secret -o yaml` shows it: values base64-encoded (never in tables)."""
    out: Obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": secret.type,
    }
    if secret.data:
        out["data"] = dict(secret.data)
    if secret.immutable:
        out["immutable"] = True
    return out


def render_service_account(sa: ServiceAccount, metadata: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}
