"""The Kubernetes resources pinnace serves, and the discovery documents that list them.

One `Resource` per REST resource (and subresource): its group, plural and kind,
whether it lives in a namespace, the verbs it allows and kubectl's short names.
Discovery (`/api`, `/api/v1`, `/apis`, `/apis/apps/v1`) is rendered from this
table (and metrics.k8s.io/v1beta1, the one group of another version, from
master/api/kube/metrics.py), so what kubectl believes the server can do and what the
handlers do are one list. kubectl asks for aggregated discovery first and falls back to these
plain documents when the answer is not an APIGroupDiscoveryList.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from master.api.kube import metrics

Obj = dict[str, Any]

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete")


@dataclass(frozen=True, slots=True)
class Resource:
    name: str  # plural, e.g. "deployments", or "deployments/scale"
    kind: str
    group: str = ""  # "" is the core group (/api/v1)
    namespaced: bool = True
    verbs: tuple[str, ...] = READ
    short_names: tuple[str, ...] = ()
    singular: str = ""
    description: str = ""
    # For subresources, the kind the parent path names (e.g. Scale's parent is deployments
    # or statefulsets).
    subresource: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"


RESOURCES: tuple[Resource, ...] = (
    Resource("namespaces", "Namespace", namespaced=False,
             verbs=("get", "list", "watch", "create", "update", "patch", "delete"),
             short_names=("ns",), singular="namespace",
             description="Namespaces; deleting one deletes everything in it."),
    Resource("nodes", "Node", namespaced=False, verbs=(*READ, "patch", "delete"),
             short_names=("no",), singular="node",
             description="A machine that runs pods, registered by its agent."),
    Resource("pods", "Pod", verbs=(*READ, "delete"), short_names=("po",), singular="pod",
             description="Containers that run together on one node."),
    Resource("pods/log", "Pod", verbs=("get",), subresource=True),
    Resource("pods/status", "Pod", verbs=("get",), subresource=True),
    Resource("pods/eviction", "Eviction", verbs=("create",), subresource=True),
    Resource("pods/exec", "PodExecOptions", verbs=("create", "get"), subresource=True),
    Resource("pods/attach", "PodAttachOptions", verbs=("create", "get"), subresource=True),
    Resource("pods/portforward", "PodPortForwardOptions", verbs=("create", "get"),
             subresource=True),
    Resource("services", "Service", verbs=(*READ, *WRITE), short_names=("svc",),
             singular="service",
             description="A load-balanced address for the ready pods a selector picks."),
    Resource("endpoints", "Endpoints", verbs=("get", "list"), short_names=("ep",),
             singular="endpoints",
             description="The addresses behind a service, as the load balancer sees them."),
    Resource("events", "Event", verbs=READ, short_names=("ev",), singular="event",
             description="Something that happened to an object, and why."),
    Resource("deployments", "Deployment", group="apps", verbs=(*READ, *WRITE),
             short_names=("deploy",), singular="deployment",
             description="Replicas of a pod template, rolled out as the template changes."),
    Resource("deployments/scale", "Scale", group="apps", verbs=("get", "update", "patch"),
             subresource=True),
    Resource("deployments/status", "Deployment", group="apps", verbs=("get",),
             subresource=True),
    Resource("configmaps", "ConfigMap", verbs=(*READ, *WRITE), short_names=("cm",),
             singular="configmap", description="Configuration data pods read as env or files."),
    Resource("secrets", "Secret", verbs=(*READ, *WRITE), singular="secret",
             description="Sensitive data pods read as env or files."),
    Resource("serviceaccounts", "ServiceAccount", verbs=(*READ, *WRITE), short_names=("sa",),
             singular="serviceaccount", description="An identity pods name (no tokens)."),
    Resource("persistentvolumeclaims", "PersistentVolumeClaim", verbs=(*READ, *WRITE),
             short_names=("pvc",), singular="persistentvolumeclaim",
             description="Storage a pod asks for; bound to a volume on one node."),
    Resource("persistentvolumes", "PersistentVolume", namespaced=False, verbs=READ,
             short_names=("pv",), singular="persistentvolume",
             description="A node's Docker volume bound to a claim."),
    Resource("statefulsets", "StatefulSet", group="apps", verbs=(*READ, *WRITE),
             short_names=("sts",), singular="statefulset",
             description="Pods with stable names and their own volumes, started in order."),
    Resource("statefulsets/scale", "Scale", group="apps", verbs=("get", "update", "patch"),
             subresource=True),
    Resource("ingresses", "Ingress", group="networking.k8s.io", verbs=(*READ, *WRITE),
             short_names=("ing",), singular="ingress",
             description="HTTP routes by host and path onto services, with TLS."),
    Resource("ingressclasses", "IngressClass", group="networking.k8s.io", namespaced=False,
             verbs=(*READ, *WRITE), singular="ingressclass",
             description='Ingress controllers by name: pinnace\'s own ("pinnace") and stored '
             "ones; Ingresses of classes whose controller is not pinnace's are left alone."),
    Resource("endpointslices", "EndpointSlice", group="discovery.k8s.io", verbs=("get", "list"),
             singular="endpointslice",
             description="A service's endpoints (derived from its Endpoints), one slice per port."),
    Resource("storageclasses", "StorageClass", group="storage.k8s.io", namespaced=False,
             verbs=("get", "list"), short_names=("sc",), singular="storageclass",
             description='Built in: "local" (the default; reclaim Delete) and "local-retain".'),
    Resource("replicasets", "ReplicaSet", group="apps", verbs=READ, short_names=("rs",),
             singular="replicaset",
             description="A Deployment's revisions (one per pod template it has rolled out)."),
    Resource("leases", "Lease", group="coordination.k8s.io", verbs=READ, singular="lease",
             description="A node's heartbeat lease (namespace kube-node-lease), computed from "
                         "the master's last heartbeat of each node; read-only."),
)  # fmt: skip

GROUPS = (
    "apps", "networking.k8s.io", "discovery.k8s.io", "storage.k8s.io", "coordination.k8s.io",
)  # fmt: skip


def resource(group: str, name: str) -> Resource | None:
    for r in RESOURCES:
        if r.group == group and r.name == name:
            return r
    return None


def by_kind(kind: str) -> Resource:
    for r in RESOURCES:
        if r.kind == kind and not r.subresource:
            return r
    raise KeyError(kind)


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_version(group: str) -> Obj:
    if group == metrics.GROUP:
        return metrics.group_version()
    return {"groupVersion": f"{group}/v1", "version": "v1"}


def api_group_list() -> Obj:
    groups = []
    for g in (*GROUPS, metrics.GROUP):
        version = _group_version(g)
        groups.append({"name": g, "versions": [version], "preferredVersion": version})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group: str) -> Obj | None:
    if group not in GROUPS and group != metrics.GROUP:
        return None
    version = _group_version(group)
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [version],
        "preferredVersion": version,
    }


def core_resource_list() -> Obj:
    """/api/v1's APIResourceList (the core group always exists)."""
    return _resource_list("")


def resource_list(group: str) -> Obj | None:
    if group and group not in GROUPS:
        return None
    return _resource_list(group)


def _resource_list(group: str) -> Obj:
    items = []
    for r in RESOURCES:
        if r.group != group:
            continue
        entry: Obj = {
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.kind == "Scale":
            entry.update(group="autoscaling", version="v1")
        if r.kind == "Eviction":  # kubectl drain evicts only where discovery says this
            entry.update(group="policy", version="v1")
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.name in ("pods", "services", "deployments", "replicasets", "statefulsets"):
            entry["categories"] = ["all"]
        items.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/v1" if group else "v1",
        "resources": items,
    }


def version_info() -> Obj:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-pinnace",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }
