"""Kind names as kubectl takes them (`po`, `pods`, `deploy`, `deployment/NAME`...)."""

from __future__ import annotations

_ALIASES = {
    "Pod": ("pod", "pods", "po"),
    "Deployment": ("deployment", "deployments", "deploy", "deployment.apps", "deployments.apps"),
    "Service": ("service", "services", "svc"),
    "Node": ("node", "nodes", "no"),
    "Event": ("event", "events", "ev"),
    "Endpoints": ("endpoints", "ep"),
    "ConfigMap": ("configmap", "configmaps", "cm"),
    "Secret": ("secret", "secrets"),
    "ServiceAccount": ("serviceaccount", "serviceaccounts", "sa"),
    "PersistentVolumeClaim": ("persistentvolumeclaim", "persistentvolumeclaims", "pvc"),
    "PersistentVolume": ("persistentvolume", "persistentvolumes", "pv"),
    "StatefulSet": ("statefulset", "statefulsets", "sts", "statefulset.apps", "statefulsets.apps"),
    "Ingress": ("ingress", "ingresses", "ing", "ingress.networking.k8s.io"),
    "IngressClass": ("ingressclass", "ingressclasses", "ingressclass.networking.k8s.io"),
    "StorageClass": ("storageclass", "storageclasses", "sc", "storageclass.storage.k8s.io"),
    "Master": ("master", "masters"),
    "Namespace": ("namespace", "namespaces", "ns"),
}
_LOOKUP = {alias: kind for kind, aliases in _ALIASES.items() for alias in aliases}

# How kubectl names a kind in its messages ("deployment.apps/web created").
RESOURCE_NAMES = {
    "Pod": "pod",
    "Deployment": "deployment.apps",
    "Service": "service",
    "Node": "node",
    "Event": "event",
    "Endpoints": "endpoints",
    "ConfigMap": "configmap",
    "Secret": "secret",
    "ServiceAccount": "serviceaccount",
    "PersistentVolumeClaim": "persistentvolumeclaim",
    "PersistentVolume": "persistentvolume",
    "StatefulSet": "statefulset.apps",
    "Ingress": "ingress.networking.k8s.io",
    "IngressClass": "ingressclass.networking.k8s.io",
    "StorageClass": "storageclass.storage.k8s.io",
    "Master": "master",
    "Namespace": "namespace",
}


class KindError(ValueError):
    pass


def resolve_kind(text: str) -> str:
    kind = _LOOKUP.get(text.lower())
    if kind is None:
        known = ", ".join(sorted(a[1] for a in _ALIASES.values()))
        raise KindError(f'the server doesn\'t have a resource type "{text}" (known: {known})')
    return kind


def split_kind_name(first: str, second: str | None) -> tuple[str, str | None]:
    """`get pods web-1`, `get pod/web-1` and `get pods` all resolve here."""
    if "/" in first:
        kind_text, _, name = first.partition("/")
        if second is not None:
            raise KindError("there is no need to give a name after KIND/NAME")
        return resolve_kind(kind_text), name or None
    return resolve_kind(first), second
