"""`pinnace describe KIND [NAME]`: kubectl's describe layout (master/cli/describe_render.py).

Reads what kubectl's describe reads, through the gRPC API: the object, the events
whose involvedObject is it, and what the layout shows beside it (a node's pods, a
deployment's or statefulset's pods for its replica sets and pod counts, a service's
endpoints, an ingress's services' endpoints, the pods that use a claim). Without NAME,
every object of the kind in the namespace (-n); a node shows its pods of every namespace.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from kernel.names import DEFAULT_NAMESPACE
from master.cli.client import CliError, MasterClient
from master.cli.commands import CLUSTER_KINDS, list_pages
from master.cli.describe_ingress import describe_ingress
from master.cli.describe_render import DESCRIBERS, Related, events_for
from master.cli.kinds import RESOURCE_NAMES, KindError, split_kind_name
from protos import cluster_pb2

Obj = dict[str, Any]


def _objects(
    client: MasterClient, kind: str, name: str = "", namespace: str | None = DEFAULT_NAMESPACE
) -> list[Obj]:
    """`namespace` None: every namespace."""
    request = cluster_pb2.GetObjectsRequest(
        kind=kind, name=name, namespace=namespace or "", all_namespaces=namespace is None
    )
    return [json.loads(o.json) for o in list_pages(client, request)]


def _matches(selector: Obj | None, pod: Obj) -> bool:
    wanted = (selector or {}).get("matchLabels") or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def related_pods(kind: str, obj: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods the layout of `obj` shows or counts."""
    name = obj["metadata"]["name"]
    if kind == "Node":
        return [p for p in pods if (p.get("spec") or {}).get("nodeName") == name]
    if kind in ("Deployment", "StatefulSet"):
        return [p for p in pods if _matches((obj.get("spec") or {}).get("selector"), p)]
    if kind == "PersistentVolumeClaim":
        return pods
    return []


def run_describe(
    address: str, kind_text: str, name: str | None, namespace: str = DEFAULT_NAMESPACE
) -> int:
    try:
        kind, name = split_kind_name(kind_text, name)
    except KindError as e:
        raise CliError(f"error: {e}") from None
    describers = {**DESCRIBERS, "Ingress": describe_ingress}
    describe = describers.get(kind)
    if describe is None:
        known = ", ".join(sorted(RESOURCE_NAMES[k].split(".")[0] for k in describers))
        raise CliError(f"error: pinnace describe shows {known}; not {kind_text}")
    client = MasterClient(address)
    try:
        scoped = kind not in CLUSTER_KINDS
        objs = _objects(client, kind, name or "", namespace if scoped else "")
        if not objs:
            where = f" in {namespace} namespace" if scoped else ""
            print(f"No resources found{where}.", file=sys.stderr)
            return 0
        # Events about a cluster-scoped object (a node) may be kept in any namespace.
        events = _objects(client, "Event", namespace=namespace if scoped else None)
        needs_pods = kind in ("Node", "Deployment", "StatefulSet", "PersistentVolumeClaim")
        pods_from = None if kind == "Node" else namespace
        pods = _objects(client, "Pod", namespace=pods_from) if needs_pods else []
        endpoints = {e["metadata"]["name"]: e for e in _objects(client, "Endpoints",
                     namespace=namespace)} if kind in ("Service", "Ingress") else {}  # fmt: skip
        now = time.time()
        texts = []
        for obj in objs:
            obj_name = obj["metadata"]["name"]
            related = Related(
                events=events_for(events, kind, obj_name),
                pods=related_pods(kind, obj, pods),
                endpoints=endpoints.get(obj_name),
                # An Ingress shows the endpoints of every Service it routes to.
                extra={"endpoints": endpoints} if kind == "Ingress" else {},
            )
            texts.append(describe(obj, related, now))
        sys.stdout.write("\n\n".join(texts))
    finally:
        client.close()
    return 0
