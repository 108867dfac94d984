"""kubectl-style tables from Kubernetes-shaped objects (the `-o json` shape).

The CLI renders from the same JSON it prints with `-o json`, so what a table
shows and what a script reads never disagree; the Kubernetes API's `as=Table`
answers (master/api/kube/tables.py) take their columns and cells from here too,
so `kubectl get` and `pinnace get` print the same columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from master.api.storage_notes import CAPACITY_BYTES, DEFAULT_STORAGE_CLASS, USED_BYTES

Obj = dict[str, Any]


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def human_age(seconds: float) -> str:
    """Like kubectl: 45s, 5m10s, 3h, 2d."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 3 * 3600:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _age(obj: Obj, now: float) -> str:
    created = _ts(obj.get("metadata", {}).get("creationTimestamp"))
    return "<unknown>" if created is None else human_age(now - created)


def pod_status_word(pod: Obj) -> str:
    """The STATUS column: what a user most needs to know about the pod."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status", {})
    for cs in status.get("containerStatuses", []):
        state = cs.get("state", {})
        if "waiting" in state and state["waiting"].get("reason"):
            return str(state["waiting"]["reason"])
        if "terminated" in state and state["terminated"].get("reason"):
            return str(state["terminated"]["reason"])
    return str(
        status.get("reason")
        if status.get("reason") == "NodeNotReady"
        else status.get("phase", "Unknown")
    )


def _pod_row(pod: Obj, now: float, wide: bool) -> list[str]:
    statuses = pod.get("status", {}).get("containerStatuses", [])
    total = len(pod.get("spec", {}).get("containers", []))
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    row = [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        pod_status_word(pod),
        str(restarts),
        _age(pod, now),
        pod.get("spec", {}).get("nodeName") or "<none>",
    ]
    if wide:
        endpoints = pod.get("status", {}).get("endpoints") or []
        row += [pod.get("status", {}).get("podIP") or "<none>", ",".join(endpoints) or "<none>"]
    return row


def _deployment_row(dep: Obj, now: float, wide: bool) -> list[str]:
    st = dep.get("status", {})
    spec = dep.get("spec", {})
    row = [
        dep["metadata"]["name"],
        f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        str(st.get("updatedReplicas", 0)),
        str(st.get("availableReplicas", 0)),
        _age(dep, now),
    ]
    if wide:
        containers = spec.get("template", {}).get("spec", {}).get("containers", [])
        selector = spec.get("selector", {}).get("matchLabels", {})
        row += [
            ",".join(c["name"] for c in containers),
            ",".join(c["image"] for c in containers),
            ",".join(f"{k}={v}" for k, v in selector.items()),
        ]
    return row


def _service_port(port: Obj) -> str:
    """As kubectl shows it: `53/UDP`, or with a node port `80:31234/TCP`."""
    node = f":{port['nodePort']}" if port.get("nodePort") else ""
    return f"{port['port']}{node}/{port.get('protocol', 'TCP')}"


def _service_row(svc: Obj, now: float, wide: bool) -> list[str]:
    spec = svc.get("spec", {})
    ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress", [])
    external = ",".join(i.get("ip", "") for i in ingress) or (
        "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"
    )
    ports = ",".join(_service_port(p) for p in spec.get("ports", []))
    row = [
        svc["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        external,
        ports,
        _age(svc, now),
    ]
    if wide:
        row.append(",".join(f"{k}={v}" for k, v in spec.get("selector", {}).items()) or "<none>")
    return row


def _node_row(node: Obj, now: float, wide: bool) -> list[str]:
    conditions = node.get("status", {}).get("conditions", [])
    ready: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
    status = {"True": "Ready", "False": "NotReady"}.get(ready.get("status", ""), "Unknown")
    if any(c.get("type") == "AgentConnected" and c.get("status") == "False" for c in conditions):
        status += ",Disconnected"
    if node.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    info = node.get("status", {}).get("nodeInfo", {})
    row = [
        node["metadata"]["name"],
        status,
        "<none>",
        _age(node, now),
        info.get("kubeletVersion", ""),
    ]
    if wide:
        addresses = node.get("status", {}).get("addresses", [])
        row += [
            next((a["address"] for a in addresses if a.get("type") == "InternalIP"), "<none>"),
            info.get("osImage", ""),
            info.get("kernelVersion", ""),
            info.get("containerRuntimeVersion", ""),
        ]
    return row


def _event_row(ev: Obj, now: float, wide: bool) -> list[str]:
    last = _ts(ev.get("lastTimestamp"))
    involved = ev.get("involvedObject", {})
    row = [
        "<unknown>" if last is None else human_age(now - last),
        ev.get("type", ""),
        ev.get("reason", ""),
        f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
        ev.get("message", ""),
    ]
    if wide:
        row.insert(4, str(ev.get("count", 1)))
    return row


def _config_map_row(cm: Obj, now: float, wide: bool) -> list[str]:
    keys = len(cm.get("data", {})) + len(cm.get("binaryData", {}))
    return [cm["metadata"]["name"], str(keys), _age(cm, now)]


def _secret_row(secret: Obj, now: float, wide: bool) -> list[str]:
    """Name, type and how many keys: never a value."""
    keys = len(secret.get("data", {}))
    return [secret["metadata"]["name"], secret.get("type", "Opaque"), str(keys), _age(secret, now)]


def _service_account_row(sa: Obj, now: float, wide: bool) -> list[str]:
    return [sa["metadata"]["name"], "0", _age(sa, now)]


def _namespace_row(ns: Obj, now: float, wide: bool) -> list[str]:
    return [ns["metadata"]["name"], ns.get("status", {}).get("phase", "Active"), _age(ns, now)]


_MODES = {"ReadWriteOnce": "RWO", "ReadWriteOncePod": "RWOP", "ReadOnlyMany": "ROX"}


def _modes(modes: Sequence[str]) -> str:
    return ",".join(_MODES.get(m, m) for m in modes)


def _claim_row(pvc: Obj, now: float, wide: bool) -> list[str]:
    spec, status = pvc.get("spec", {}), pvc.get("status", {})
    row = [
        pvc["metadata"]["name"],
        status.get("phase", "Pending"),
        spec.get("volumeName", ""),
        status.get("capacity", {}).get("storage", ""),
        _modes(status.get("accessModes", [])),
        spec.get("storageClassName", ""),
        _age(pvc, now),
    ]
    if wide:
        node = pvc["metadata"].get("annotations", {}).get("volume.kubernetes.io/selected-node")
        row += [spec.get("volumeMode", "Filesystem"), node or "<none>", _used(pvc)]
    return row


def format_bytes(num_bytes: int) -> str:
    """Bytes rounded for a table: 0, 812Ki, 12Mi, 1.5Gi."""
    for suffix, power in (("Gi", 3), ("Mi", 2), ("Ki", 1)):
        unit = 1024**power
        if num_bytes >= unit:
            value = num_bytes / unit
            return (
                f"{value:.1f}{suffix}" if value < 10 and power == 3 else f"{round(value)}{suffix}"
            )
    return str(num_bytes)


def _used(pvc: Obj) -> str:
    """`12Mi/64Mi` (used of the enforced size), `12Mi` (size not enforced), or <unknown>."""
    notes = pvc["metadata"].get("annotations", {})
    used, size = notes.get(USED_BYTES), notes.get(CAPACITY_BYTES)
    if used is None:
        return "<unknown>"
    shown = format_bytes(int(used))
    return f"{shown}/{format_bytes(int(size))}" if size else shown


def _volume_row(pv: Obj, now: float, wide: bool) -> list[str]:
    spec = pv.get("spec", {})
    claim = spec.get("claimRef", {})
    node = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    row = [
        pv["metadata"]["name"],
        spec.get("capacity", {}).get("storage", ""),
        _modes(spec.get("accessModes", [])),
        spec.get("persistentVolumeReclaimPolicy", ""),
        pv.get("status", {}).get("phase", ""),
        f"{claim.get('namespace', 'default')}/{claim.get('name', '')}",
        spec.get("storageClassName", ""),
        _age(pv, now),
    ]
    if wide:
        row += [node["values"][0]]
    return row


def _statefulset_row(sts: Obj, now: float, wide: bool) -> list[str]:
    spec, status = sts.get("spec", {}), sts.get("status", {})
    row = [
        sts["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        _age(sts, now),
    ]
    if wide:
        containers = spec.get("template", {}).get("spec", {}).get("containers", [])
        row += [",".join(c["name"] for c in containers), ",".join(c["image"] for c in containers)]
    return row


def _endpoints_row(ep: Obj, now: float, wide: bool) -> list[str]:
    ready = [
        f"{a['ip']}:{s['ports'][0]['port']}"
        for s in ep.get("subsets", [])
        for a in s.get("addresses", [])
    ]
    shown = ",".join(ready[:3]) + (f" + {len(ready) - 3} more..." if len(ready) > 3 else "")
    return [ep["metadata"]["name"], shown or "<none>", _age(ep, now)]


def _ingress_hosts(rules: list[Obj]) -> str:
    """kubectl's HOSTS: the first three hosts, "*" when no rule names one."""
    hosts = [r["host"] for r in rules[:3] if r.get("host")]
    if not hosts:
        return "*"
    more = f" + {len(rules) - 3} more..." if len(rules) > 3 else ""
    return ",".join(hosts) + more


def _ingress_row(ing: Obj, now: float, wide: bool) -> list[str]:
    spec = ing.get("spec", {})
    ingress = ing.get("status", {}).get("loadBalancer", {}).get("ingress", [])
    address = ",".join(i.get("ip", "") for i in ingress)
    ports = list(dict.fromkeys(p["port"] for i in ingress for p in i.get("ports", [])))
    shown = ", ".join(str(p) for p in ports) or ("80, 443" if spec.get("tls") else "80")
    return [
        ing["metadata"]["name"],
        spec.get("ingressClassName") or "<none>",
        _ingress_hosts(spec.get("rules", [])),
        address,
        shown,
        _age(ing, now),
    ]


def _ingress_class_row(ic: Obj, now: float, wide: bool) -> list[str]:
    return [ic["metadata"]["name"], ic["spec"]["controller"], "<none>", _age(ic, now)]


def _storage_class_row(sc: Obj, now: float, wide: bool) -> list[str]:
    default = sc["metadata"].get("annotations", {}).get(DEFAULT_STORAGE_CLASS) == "true"
    return [
        sc["metadata"]["name"] + (" (default)" if default else ""),
        sc["provisioner"],
        sc["reclaimPolicy"],
        sc["volumeBindingMode"],
        str(sc["allowVolumeExpansion"]).lower(),
        _age(sc, now),
    ]


def _master_row(master: Obj, now: float, wide: bool) -> list[str]:
    role = "leader" if master.get("status", {}).get("leader") else "follower"
    return [master["metadata"]["name"], master["spec"]["address"], role, _age(master, now)]


_HEADERS: dict[str, tuple[list[str], list[str]]] = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE"], ["IP", "ENDPOINTS"]),
    "Deployment": (
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["CONTAINERS", "IMAGES", "SELECTOR"],
    ),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"]),
    "Node": (
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        ["INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
    ),
    "Event": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], []),
    "Endpoints": (["NAME", "ENDPOINTS", "AGE"], []),
    "ConfigMap": (["NAME", "DATA", "AGE"], []),
    "Secret": (["NAME", "TYPE", "DATA", "AGE"], []),
    "ServiceAccount": (["NAME", "SECRETS", "AGE"], []),
    "Namespace": (["NAME", "STATUS", "AGE"], []),
    "PersistentVolumeClaim": (
        ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "AGE"],
        ["VOLUMEMODE", "NODE", "USED"],
    ),
    "PersistentVolume": (
        [
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "AGE",
        ],
        ["NODE"],
    ),
    "Master": (["NAME", "ADDRESS", "ROLE", "AGE"], []),
    "StatefulSet": (["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"]),
    "Ingress": (["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], []),
    "IngressClass": (["NAME", "CONTROLLER", "PARAMETERS", "AGE"], []),
    "StorageClass": (
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE",
        ],
        [],
    ),
}
_ROWS: dict[str, Callable[[Obj, float, bool], list[str]]] = {
    "Pod": _pod_row,
    "Deployment": _deployment_row,
    "Service": _service_row,
    "Node": _node_row,
    "Event": _event_row,
    "Endpoints": _endpoints_row,
    "ConfigMap": _config_map_row,
    "Secret": _secret_row,
    "ServiceAccount": _service_account_row,
    "Namespace": _namespace_row,
    "PersistentVolumeClaim": _claim_row,
    "PersistentVolume": _volume_row,
    "Master": _master_row,
    "StatefulSet": _statefulset_row,
    "Ingress": _ingress_row,
    "IngressClass": _ingress_class_row,
    "StorageClass": _storage_class_row,
}


def rows_for(
    kind: str, objs: Sequence[Obj], wide: bool, now: float | None = None
) -> list[list[str]]:
    when = time.time() if now is None else now
    return [_ROWS[kind](o, when, wide) for o in objs]


def has_table(kind: str) -> bool:
    """Whether the CLI has columns of its own for this kind (else NAME and AGE)."""
    return kind in _ROWS


def header_for(kind: str, wide: bool) -> list[str]:
    base, extra = _HEADERS[kind]
    if kind == "Event" and wide:
        return [*base[:4], "COUNT", *base[4:]]
    return base + extra if wide else list(base)


def printable(cell: str) -> str:
    """A cell as it may reach a terminal: control characters shown escaped, never sent.

    Event messages, reasons and labels come partly from nodes and users; an escape
    sequence in them must not clear or retitle an admin's terminal.
    """
    if cell.isprintable():
        return cell
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in cell)


def format_table(header: list[str], rows: list[list[str]]) -> str:
    rows = [[printable(c) for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [header, *rows]:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + [row[-1]]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)
