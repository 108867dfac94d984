"""Ingresses and the built-in IngressClass in Kubernetes' shape (`-o yaml`, the HTTP API).

The spec is written in manifest form, so rendering an Ingress and applying the
output again declares the same thing. The status carries what the load
balancer serves it on: `status.loadBalancer.ingress[].ip` (kubectl's ADDRESS)
and its `ports` (kubectl 1.26+'s IngressPortStatus); `pinnace get ingress`
and kubectl's PORTS column read them. IngressClasses: pinnace's own, "pinnace",
made here on every read (the default unless a stored class is annotated default), and
the stored ones users apply (`render_ingress_classes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from master.model import (
    DEFAULT_CLASS_ANNOTATION,
    INGRESS_CLASS,
    INGRESS_CONTROLLER,
    Ingress,
    IngressBackend,
    IngressClass,
    IngressPath,
    IngressRule,
)

Obj = dict[str, Any]

API_VERSION = "networking.k8s.io/v1"


def render_backend(b: IngressBackend) -> Obj:
    port: Obj = {"number": b.port_number} if b.port_number else {"name": b.port_name}
    return {"service": {"name": b.service, "port": port}}


def _path(p: IngressPath) -> Obj:
    out: Obj = {"pathType": p.path_type, "backend": render_backend(p.backend)}
    if p.path:
        out = {"path": p.path, **out}
    return out


def _rule(r: IngressRule) -> Obj:
    out: Obj = {}
    if r.host:
        out["host"] = r.host
    if r.paths:
        out["http"] = {"paths": [_path(p) for p in r.paths]}
    return out


def render_ingress(ing: Ingress, metadata: Obj) -> Obj:
    spec: Obj = {}
    if ing.class_name:
        spec["ingressClassName"] = ing.class_name
    if ing.default_backend is not None:
        spec["defaultBackend"] = render_backend(ing.default_backend)
    if ing.rules:
        spec["rules"] = [_rule(r) for r in ing.rules]
    if ing.tls:
        spec["tls"] = [
            {"hosts": list(t.hosts), "secretName": t.secret_name} if t.hosts else
            {"secretName": t.secret_name}
            for t in ing.tls
        ]  # fmt: skip
    ingress: list[Obj] = []
    if ing.address:
        entry: Obj = {"ip": ing.address}
        if ing.ports:
            entry["ports"] = [{"port": p, "protocol": "TCP"} for p in ing.ports]
        ingress.append(entry)
    return {
        "apiVersion": API_VERSION,
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
        "status": {"loadBalancer": {"ingress": ingress}},
    }


def render_ingress_class(created: str | None, default: bool = True) -> Obj:
    """The built-in IngressClass; `created` is when this master started (RFC 3339)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "IngressClass",
        "metadata": {
            "name": INGRESS_CLASS,
            "uid": "pinnace-ingressclass",
            "resourceVersion": "1",
            "generation": 1,
            "creationTimestamp": created,
            "labels": {},
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"} if default else {},
        },
        "spec": {"controller": INGRESS_CONTROLLER},
    }


def render_stored_ingress_class(ic: IngressClass, meta: Obj) -> Obj:
    """A stored IngressClass; `meta` is its rendered metadata (cluster-scoped: no namespace)."""
    meta.pop("namespace", None)
    return {
        "apiVersion": API_VERSION,
        "kind": "IngressClass",
        "metadata": meta,
        "spec": {"controller": ic.controller},
    }


def render_ingress_classes(
    stored: Iterable[tuple[IngressClass, Obj]], created: str | None
) -> list[Obj]:
    """Every IngressClass by name: the stored ones (each with its rendered metadata) and the
    built-in "pinnace" unless one of them has taken that name; the built-in is the default
    only while no stored class is."""
    classes = sorted(stored, key=lambda pair: pair[0].meta.name)
    docs = [render_stored_ingress_class(ic, meta) for ic, meta in classes]
    if not any(ic.meta.name == INGRESS_CLASS for ic, _ in classes):
        builtin = render_ingress_class(created, not any(ic.is_default for ic, _ in classes))
        docs.append(builtin)
    return sorted(docs, key=lambda d: str(d["metadata"]["name"]))
