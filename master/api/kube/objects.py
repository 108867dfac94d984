"""Stored objects -> the Kubernetes objects the HTTP API serves, including derived kinds.

Most kinds are master/api/render.py's shapes, the same `pinnace get -o json`
prints. Three are derived on every read, never stored:

- Endpoints: each service's pods as the load balancer sees them (master/app).
- ReplicaSets: a Deployment's rollout history. Each revision pinnace records
  (its pod template and template hash) is shown as the ReplicaSet Kubernetes
  would have made for it: named `<deployment>-<hash>`, owned by the
  deployment (its uid), annotated with `deployment.kubernetes.io/revision` and
  the change cause, with as many replicas as pods of that template exist. That
  is what `kubectl rollout history` and `rollout undo` read.
- IngressClasses: pinnace has one, `pinnace`, the default (master/api/render_ingress.py).
- StorageClasses: built in, `local` (the default) and `local-retain` (render_storage.py).
"""

from __future__ import annotations

from typing import Any

from master.api.render import (
    render_endpoints,
    render_ingress_class_list,
    render_object,
    render_pod_spec,
    rfc3339,
)
from master.api.render_storage import render_storage_classes
from master.app.podnetwork import network_of
from master.app.queries import list_endpoints
from master.controllers.deployment import TEMPLATE_HASH_LABEL
from master.controllers.naming import template_hash
from master.controllers.revisions import CHANGE_CAUSE
from master.model import (
    DEFAULT_NAMESPACE,
    KINDS,
    Deployment,
    Event,
    StatefulSet,
    StoredObject,
    is_namespaced,
)
from master.state import ClusterState

Obj = dict[str, Any]


_GROUP_VERSIONS = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Ingress": "networking.k8s.io/v1",
}


def render(obj: StoredObject, now: float, state: ClusterState) -> Obj:
    """An object as the API serves it: `pinnace get -o json`'s shape, with uids filled in.

    Owner references and events' involved objects carry the referent's uid,
    which clients need (the Python client requires it; `kubectl describe` finds
    events by it).
    """
    out = render_object(obj, now, network_of(state) if obj.kind == "Pod" else None)
    ns = obj.meta.namespace
    if not is_namespaced(obj.kind):
        out["metadata"].pop("namespace", None)
    if obj.kind == "Namespace":
        out["metadata"]["labels"] = {
            **out["metadata"].get("labels", {}),
            "kubernetes.io/metadata.name": obj.meta.name,
        }
    for ref in out["metadata"].get("ownerReferences", []):
        owner = state.get(ref["kind"], ref["name"], ns) if ref["kind"] in KINDS else None
        ref["uid"] = owner.meta.uid if owner is not None else ""
        ref.setdefault("blockOwnerDeletion", True)
    if isinstance(obj, Event):
        involved = (
            state.get(obj.involved_kind, obj.involved_name, ns)
            if obj.involved_kind in KINDS
            else None
        )
        out["involvedObject"]["uid"] = involved.meta.uid if involved is not None else ""
        out["involvedObject"]["apiVersion"] = _GROUP_VERSIONS.get(obj.involved_kind, "v1")
        if not is_namespaced(obj.involved_kind):
            out["involvedObject"]["namespace"] = ""
    return out


def replica_sets(dep: Deployment, state: ClusterState) -> list[Obj]:
    counts: dict[str, tuple[int, int]] = {}
    for pod in state.pods_of_owner(dep.meta.name, dep.meta.namespace):
        if pod.deletion_requested_at:
            continue
        total, ready = counts.get(pod.template_hash, (0, 0))
        counts[pod.template_hash] = (total + 1, ready + int(pod.status.ready))
    out = []
    current = template_hash(dep.template)
    for rev in dep.history:
        # The hash the controller gives this template's pods now (a stored one may predate
        # a change of the hash function).
        hash_ = template_hash(rev.template)
        labels = {**rev.template.labels, TEMPLATE_HASH_LABEL: hash_}
        total, ready = counts.get(hash_, (0, 0))
        annotations = {"deployment.kubernetes.io/revision": str(rev.revision)}
        if rev.change_cause:
            annotations[CHANGE_CAUSE] = rev.change_cause
        desired = dep.replicas if hash_ == current else 0
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{dep.meta.name}-{hash_}",
                    "namespace": dep.meta.namespace,
                    "uid": f"{dep.meta.uid}-{hash_}",
                    "resourceVersion": str(dep.meta.resource_version),
                    "generation": 1,
                    "creationTimestamp": rfc3339(rev.created_at or dep.meta.created_at),
                    "labels": labels,
                    "annotations": annotations,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": dep.meta.name,
                            "uid": dep.meta.uid,
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": {
                    "replicas": desired,
                    "selector": {"matchLabels": {**dep.selector, TEMPLATE_HASH_LABEL: hash_}},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": render_pod_spec(rev.template.spec),
                    },
                },
                "status": {
                    "replicas": total,
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                    "observedGeneration": 1,
                },
            }
        )
    return out


def scale(dep: Deployment | StatefulSet) -> Obj:
    """The autoscaling/v1 Scale of a deployment or statefulset (their /scale
    subresource: what `kubectl scale` and typed clients' UpdateScale read and write)."""
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": dep.meta.name,
            "namespace": dep.meta.namespace,
            "uid": dep.meta.uid,
            "resourceVersion": str(dep.meta.resource_version),
            "creationTimestamp": rfc3339(dep.meta.created_at),
        },
        "spec": {"replicas": dep.replicas},
        "status": {
            "replicas": dep.status.replicas,
            "selector": ",".join(f"{k}={v}" for k, v in sorted(dep.selector.items())),
        },
    }


def endpoint_slices(endpoints: Obj) -> list[Obj]:
    """discovery.k8s.io EndpointSlices for a service's Endpoints (what `kubectl describe
    service` reads): each pod is reached on a port of its own, so each subset is a slice,
    labelled with its service's name as Kubernetes' are."""
    meta = endpoints.get("metadata") or {}
    service = str(meta.get("name", ""))
    slices: list[Obj] = []
    for i, subset in enumerate(endpoints.get("subsets") or []):
        found = [(a, True) for a in subset.get("addresses") or []] + [
            (a, False) for a in subset.get("notReadyAddresses") or []
        ]
        slices.append({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-{i}",
                "namespace": meta.get("namespace", DEFAULT_NAMESPACE),
                "creationTimestamp": meta.get("creationTimestamp"),
                "labels": {
                    "kubernetes.io/service-name": service,
                    "endpointslice.kubernetes.io/managed-by": "pinnace",
                },
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": service}],
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [a.get("ip")], "conditions": {"ready": ready},
                 **({"targetRef": a["targetRef"]} if a.get("targetRef") else {})}
                for a, ready in found
            ],
            # kubectl reads every port's name (unnamed: ""), as the API server always sets it.
            "ports": [{"name": "", **p} for p in subset.get("ports") or []],
        })  # fmt: skip
    return slices


# Kinds whose list is computed from other objects rather than stored.
DERIVED_KINDS = frozenset(
    {"IngressClass", "StorageClass", "Endpoints", "EndpointSlice", "ReplicaSet"}
)


def stored_of_kind(state: ClusterState, kind: str, namespace: str | None) -> list[StoredObject]:
    """A stored kind's objects in list order: by namespace and name (events in time order)."""
    objs = state.objects(kind, namespace)
    if kind != "Event":
        objs.sort(key=lambda o: (o.meta.namespace, o.meta.name))
    return objs


def list_kind(
    state: ClusterState, kind: str, now: float, created_at: float, namespace: str | None = None
) -> list[Obj]:
    """Every object of a kind in `namespace` (None: every namespace), rendered, sorted by
    namespace and name (events in time order)."""
    if kind == "IngressClass":
        return render_ingress_class_list(state.objects("IngressClass"), rfc3339(created_at))
    if kind == "StorageClass":
        return render_storage_classes(rfc3339(created_at))
    if kind == "Endpoints":
        return [render_endpoints(svc, ports) for svc, ports in list_endpoints(state, "", namespace)]
    if kind == "EndpointSlice":
        return [
            s
            for svc, ports in list_endpoints(state, "", namespace)
            for s in endpoint_slices(render_endpoints(svc, ports))
        ]
    if kind == "ReplicaSet":
        deps = sorted(
            (d for d in state.objects("Deployment", namespace) if isinstance(d, Deployment)),
            key=lambda d: (d.meta.namespace, d.meta.name),
        )
        return [rs for d in deps for rs in replica_sets(d, state)]
    return [render(o, now, state) for o in stored_of_kind(state, kind, namespace)]


def get_one(
    state: ClusterState,
    kind: str,
    name: str,
    now: float,
    created_at: float,
    namespace: str = DEFAULT_NAMESPACE,
) -> Obj | None:
    if kind == "IngressClass":
        classes = render_ingress_class_list(state.objects("IngressClass"), rfc3339(created_at))
        return next((c for c in classes if c["metadata"]["name"] == name), None)
    if kind == "StorageClass":
        classes = render_storage_classes(rfc3339(created_at))
        return next((c for c in classes if c["metadata"]["name"] == name), None)
    if kind == "Endpoints":
        found = [
            render_endpoints(s, p)
            for s, p in list_endpoints(state, "", namespace)
            if s.meta.name == name
        ]
        return found[0] if found else None
    if kind == "EndpointSlice":
        return next((s for s in list_kind(state, kind, now, created_at, namespace)
                     if s["metadata"]["name"] == name), None)  # fmt: skip
    if kind == "ReplicaSet":
        return next((rs for rs in list_kind(state, kind, now, created_at, namespace)
                     if rs["metadata"]["name"] == name), None)  # fmt: skip
    obj = state.get(kind, name, namespace)
    return None if obj is None else render(obj, now, state)
