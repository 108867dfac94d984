"""`pinnace describe` text in kubectl's layout, from the objects `pinnace get -o json` prints.

Pure functions: the object, the events about it and the few related objects
(the node's pods, a service's endpoints...) in; text out. The layout is kubectl's
describe: `Field:<TAB>value` lines aligned by a tab writer that works as Go's
text/tabwriter does (a column is aligned over the run of consecutive lines that
have it), nested blocks indented by two spaces, and the events table at the end.
Secrets never show values: a secret's data is shown as sizes, an env var from a
secret as a reference, and the last-applied annotation (which holds what was
applied, stringData included) is never printed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kernel.quantity import QuantityError, parse_quantity_cpu, parse_quantity_memory
from master.api.tables import human_age

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
PADDING = 2


def tabwrite(text: str) -> str:
    """Go's text/tabwriter with kubectl's settings (min width 0, padding 2, spaces)."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []

    def write(widths: list[int], first: int, end: int) -> None:
        for cells in lines[first:end]:
            parts = []
            for j, cell in enumerate(cells):
                if j < len(cells) - 1 and j < len(widths):
                    parts.append(cell.ljust(widths[j]))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def layout(widths: list[int], first: int, end: int) -> None:
        column = len(widths)
        start = first
        this = first
        while this < end:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(widths, start, this)
            start = this
            width = 0
            while this < end and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + PADDING)
                this += 1
            layout([*widths, width], start, this)
            start = this
        write(widths, start, end)

    layout([], 0, len(lines))
    return "\n".join(out)


class Writer:
    """Lines of `Field:\\tvalue` at a nesting level (two spaces each)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, level: int, text: str) -> None:
        self.lines.append("  " * level + text)

    def text(self) -> str:
        return tabwrite("\n".join(self.lines)) + "\n"


@dataclass(frozen=True, slots=True)
class Related:
    """What describe shows beside the object itself."""

    events: Sequence[Obj] = ()
    # A node's, deployment's, statefulset's pods, or every pod (for a claim's users).
    pods: Sequence[Obj] = ()
    endpoints: Obj | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _ts(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _when(text: str | None) -> str:
    """kubectl's time format (RFC 1123 with a numeric zone), in UTC."""
    seconds = _ts(text)
    if seconds is None:
        return "<unknown>"
    return datetime.fromtimestamp(seconds, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def _since(text: str | None, now: float) -> str:
    seconds = _ts(text)
    return "<unknown>" if seconds is None else human_age(now - seconds)


def _map_lines(w: Writer, level: int, title: str, values: dict[str, str], sep: str) -> None:
    shown = {k: v for k, v in sorted((values or {}).items()) if k != LAST_APPLIED}
    if not shown:
        w(level, f"{title}:\t<none>")
        return
    for i, (k, v) in enumerate(shown.items()):
        w(level, f"{title + ':' if i == 0 else ''}\t{k}{sep}{v}")


def _labels(w: Writer, level: int, obj: Obj, title: str = "Labels") -> None:
    _map_lines(w, level, title, obj.get("metadata", {}).get("labels") or {}, "=")


def _annotations(w: Writer, level: int, obj: Obj) -> None:
    _map_lines(w, level, "Annotations", obj.get("metadata", {}).get("annotations") or {}, ": ")


def _selector(selector: dict[str, Any] | None) -> str:
    labels = (selector or {}).get("matchLabels", selector or {})
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if isinstance(v, str))


def _events(w: Writer, events: Sequence[Obj], now: float) -> None:
    if not events:
        w(0, "Events:\t<none>")
        return
    w(0, "Events:")
    w(1, "Type\tReason\tAge\tFrom\tMessage")
    w(1, "----\t------\t----\t----\t-------")
    ordered = sorted(events, key=lambda e: _ts(e.get("lastTimestamp")) or 0.0)
    for e in ordered:
        age = _since(e.get("lastTimestamp"), now)
        count = int(e.get("count") or 1)
        if count > 1:
            age = f"{age} (x{count} over {_since(e.get('firstTimestamp'), now)})"
        source = e.get("source") or {}
        origin = ", ".join(x for x in (source.get("component"), source.get("host")) if x)
        message = " ".join(str(e.get("message", "")).split())
        w(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{age}\t{origin}\t{message}")


def events_for(events: Sequence[Obj], kind: str, name: str) -> list[Obj]:
    return [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("kind") == kind
        and (e.get("involvedObject") or {}).get("name") == name
    ]


# -- containers ---------------------------------------------------------------------


def _probe(p: Obj) -> str:
    if "httpGet" in p:
        g = p["httpGet"]
        how = f"http-get {g.get('scheme', 'HTTP').lower()}://{g.get('host', '')}:{g.get('port')}"
        how += str(g.get("path", ""))
    elif "tcpSocket" in p:
        how = f"tcp-socket :{p['tcpSocket'].get('port')}"
    elif "exec" in p:
        how = "exec " + str(list(p["exec"].get("command", [])))
    else:
        how = "unknown"
    return (
        f"{how} delay={p.get('initialDelaySeconds', 0)}s timeout={p.get('timeoutSeconds', 1)}s "
        f"period={p.get('periodSeconds', 10)}s #success={p.get('successThreshold', 1)} "
        f"#failure={p.get('failureThreshold', 3)}"
    )


def _env_value(e: Obj) -> str:
    if "value" in e:
        return str(e["value"])
    source = e.get("valueFrom") or {}
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"]
        optional = "true" if ref.get("optional") else "false"
        return (
            f"<set to the key '{ref.get('key')}' in secret '{ref.get('name')}'>\t"
            f"Optional: {optional}"
        )
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        optional = "true" if ref.get("optional") else "false"
        return (
            f"<set to the key '{ref.get('key')}' of config map '{ref.get('name')}'>\t"
            f"Optional: {optional}"
        )
    if "fieldRef" in source:
        ref = source["fieldRef"]
        return f"({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath')})"
    if "resourceFieldRef" in source:
        return f"{source['resourceFieldRef'].get('resource')}"
    return ""


def _state_lines(w: Writer, title: str, state: Obj) -> None:
    if "running" in state:
        w(2, f"{title}:\tRunning")
        w(3, f"Started:\t{_when(state['running'].get('startedAt'))}")
    elif "waiting" in state:
        w(2, f"{title}:\tWaiting")
        if state["waiting"].get("reason"):
            w(3, f"Reason:\t{state['waiting']['reason']}")
        if state["waiting"].get("message"):
            w(3, f"Message:\t{state['waiting']['message']}")
    elif "terminated" in state:
        t = state["terminated"]
        w(2, f"{title}:\tTerminated")
        if t.get("reason"):
            w(3, f"Reason:\t{t['reason']}")
        if t.get("message"):
            w(3, f"Message:\t{t['message']}")
        w(3, f"Exit Code:\t{t.get('exitCode', 0)}")
        w(3, f"Started:\t{_when(t.get('startedAt'))}")
        w(3, f"Finished:\t{_when(t.get('finishedAt'))}")
    else:
        w(2, f"{title}:\tWaiting")


def _containers(
    w: Writer,
    containers: Sequence[Obj],
    statuses: Sequence[Obj] | None,
    port_map: dict[str, int],
    space: str,
) -> None:
    by_name = {s.get("name"): s for s in statuses or ()}
    for c in containers:
        w(1, f"{space}{c.get('name')}:")
        status = by_name.get(c.get("name"))
        if statuses is not None:
            w(2, f"Container ID:\t{(status or {}).get('containerID', '')}")
        w(2, f"Image:\t{c.get('image', '')}")
        if statuses is not None:
            w(2, f"Image ID:\t{(status or {}).get('imageID', '')}")
        ports = c.get("ports") or []
        shown = [f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in ports]
        host = [f"{port_map.get(key, p.get('hostPort', 0))}/{p.get('protocol', 'TCP')}"
                for key, p in zip(shown, ports, strict=True)]  # fmt: skip
        plural = "s" if len(shown) > 1 else ""
        w(2, f"Port{plural}:\t{', '.join(shown) or '<none>'}")
        w(2, f"Host Port{plural}:\t{', '.join(host) or '<none>'}")
        for title, key in (("Command", "command"), ("Args", "args")):
            if c.get(key):
                w(2, f"{title}:")
                for part in c[key]:
                    w(3, str(part))
        if status is not None:
            _state_lines(w, "State", status.get("state") or {})
            if status.get("lastState"):
                _state_lines(w, "Last State", status["lastState"])
            w(2, f"Ready:\t{'True' if status.get('ready') else 'False'}")
            w(2, f"Restart Count:\t{status.get('restartCount', 0)}")
        elif statuses is not None:
            w(2, "State:\tWaiting")
            w(2, "Ready:\tFalse")
            w(2, "Restart Count:\t0")
        resources = c.get("resources") or {}
        for title in ("limits", "requests"):
            if resources.get(title):
                w(2, f"{title.capitalize()}:")
                for name, value in sorted(resources[title].items()):
                    w(3, f"{name}:\t{value}")
        for title, key in (
            ("Liveness", "livenessProbe"),
            ("Readiness", "readinessProbe"),
            ("Startup", "startupProbe"),
        ):
            if c.get(key):
                w(2, f"{title}:\t{_probe(c[key])}")
        if c.get("envFrom"):
            w(2, "Environment Variables from:")
            for source in c["envFrom"]:
                kind, ref = (
                    ("Secret", source["secretRef"])
                    if "secretRef" in source
                    else ("ConfigMap", source.get("configMapRef") or {})
                )
                optional = "true" if ref.get("optional") else "false"
                w(3, f"{ref.get('name')}\t{kind}\tOptional: {optional}")
        env = c.get("env") or []
        if not env:
            w(2, "Environment:\t<none>")
        else:
            w(2, "Environment:")
            for e in env:
                w(3, f"{e.get('name')}:\t{_env_value(e)}")
        mounts = c.get("volumeMounts") or []
        if not mounts:
            w(2, "Mounts:\t<none>")
        else:
            w(2, "Mounts:")
            for m in sorted(mounts, key=lambda m: str(m.get("mountPath"))):
                flags = "ro" if m.get("readOnly") else "rw"
                sub = f',path="{m["subPath"]}"' if m.get("subPath") else ""
                w(3, f"{m.get('mountPath')} from {m.get('name')} ({flags}{sub})")


def _volumes(w: Writer, level: int, volumes: Sequence[Obj]) -> None:
    if not volumes:
        w(level, "Volumes:\t<none>")
        return
    w(level, "Volumes:")
    for v in volumes:
        w(level + 1, f"{v.get('name')}:")
        if "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]
            w(level + 2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim "
                         "in the same namespace)")  # fmt: skip
            w(level + 2, f"ClaimName:\t{claim.get('claimName')}")
            w(level + 2, f"ReadOnly:\t{'true' if claim.get('readOnly') else 'false'}")
        elif "emptyDir" in v:
            e = v["emptyDir"] or {}
            w(level + 2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)")
            w(level + 2, f"Medium:\t{e.get('medium', '')}")
            w(level + 2, f"SizeLimit:\t{e.get('sizeLimit', '<unset>')}")
        elif "configMap" in v:
            w(level + 2, "Type:\tConfigMap (a volume populated by a ConfigMap)")
            w(level + 2, f"Name:\t{v['configMap'].get('name')}")
            w(level + 2, f"Optional:\t{'true' if v['configMap'].get('optional') else 'false'}")
        elif "secret" in v:
            w(level + 2, "Type:\tSecret (a volume populated by a Secret)")
            w(level + 2, f"SecretName:\t{v['secret'].get('secretName')}")
            w(level + 2, f"Optional:\t{'true' if v['secret'].get('optional') else 'false'}")
        elif "hostPath" in v:
            w(level + 2, "Type:\tHostPath (bare host directory volume)")
            w(level + 2, f"Path:\t{v['hostPath'].get('path')}")
        else:
            w(level + 2, "Type:\t<unknown>")


def qos_class(containers: Sequence[Obj]) -> str:
    """Kubernetes' QoS class from the containers' requests and limits."""
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            any_set = True
        for name in ("cpu", "memory"):
            limit = limits.get(name)
            if limit is None or requests.get(name, limit) != limit:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _template(w: Writer, template: Obj) -> None:
    spec = template.get("spec") or {}
    w(0, "Pod Template:")
    _labels(w, 1, template)
    annotations = (template.get("metadata") or {}).get("annotations")
    if annotations:
        _map_lines(w, 1, "Annotations", annotations, ": ")
    if spec.get("serviceAccountName"):
        w(1, f"Service Account:\t{spec['serviceAccountName']}")
    w(1, "Containers:")
    _containers(w, spec.get("containers") or [], None, {}, " ")
    _volumes(w, 1, spec.get("volumes") or [])
    selectors = spec.get("nodeSelector")
    w(1, f"Node-Selectors:\t{_selector(selectors) if selectors else '<none>'}")
    w(1, "Tolerations:\t<none>")


# -- kinds --------------------------------------------------------------------------


def _meta_top(w: Writer, obj: Obj, namespaced: bool = True) -> None:
    meta = obj.get("metadata") or {}
    w(0, f"Name:\t{meta.get('name', '')}")
    if namespaced:
        w(0, f"Namespace:\t{meta.get('namespace', 'default')}")


def describe_pod(pod: Obj, related: Related, now: float) -> str:
    w = Writer()
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    _meta_top(w, pod)
    if spec.get("serviceAccountName"):
        w(0, f"Service Account:\t{spec['serviceAccountName']}")
    node = spec.get("nodeName")
    w(0, f"Node:\t{node}/{status.get('hostIP', '')}" if node else "Node:\t<none>")
    if status.get("startTime"):
        w(0, f"Start Time:\t{_when(status['startTime'])}")
    _labels(w, 0, pod)
    _annotations(w, 0, pod)
    if meta.get("deletionTimestamp"):
        w(0, f"Status:\tTerminating (lasts {_since(meta['deletionTimestamp'], now)})")
        w(0, f"Termination Grace Period:\t{spec.get('terminationGracePeriodSeconds', 30)}s")
    else:
        w(0, f"Status:\t{status.get('phase', 'Unknown')}")
    if status.get("reason"):
        w(0, f"Reason:\t{status['reason']}")
    if status.get("message"):
        w(0, f"Message:\t{status['message']}")
    w(0, f"IP:\t{status.get('podIP', '')}")
    if status.get("podIP"):
        w(0, "IPs:")
        w(1, f"IP:\t{status['podIP']}")
    else:
        w(0, "IPs:\t<none>")
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
    if owners:
        w(0, f"Controlled By:\t{owners[0].get('kind')}/{owners[0].get('name')}")
    w(0, "Containers:")
    _containers(
        w,
        spec.get("containers") or [],
        status.get("containerStatuses") or [],
        status.get("portMap") or {},
        "",
    )
    conditions = status.get("conditions") or []
    if conditions:
        w(0, "Conditions:")
        w(1, "Type\tStatus")
        for c in conditions:
            w(1, f"{c.get('type')} \t{c.get('status')} ")
    _volumes(w, 0, spec.get("volumes") or [])
    w(0, f"QoS Class:\t{qos_class(spec.get('containers') or [])}")
    selectors = spec.get("nodeSelector")
    w(0, f"Node-Selectors:\t{_selector(selectors) if selectors else '<none>'}")
    w(0, "Tolerations:\t<none>")
    _events(w, related.events, now)
    return w.text()


def _revision_pods(pods: Sequence[Obj], template_hash: str) -> int:
    return sum(
        1
        for p in pods
        if (p.get("metadata") or {}).get("labels", {}).get("pod-template-hash") == template_hash
        and not (p.get("metadata") or {}).get("deletionTimestamp")
    )


def describe_deployment(dep: Obj, related: Related, now: float) -> str:
    w = Writer()
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    _meta_top(w, dep)
    w(0, f"CreationTimestamp:\t{_when(meta.get('creationTimestamp'))}")
    _labels(w, 0, dep)
    _annotations(w, 0, dep)
    w(0, f"Selector:\t{_selector(spec.get('selector'))}")
    replicas = int(spec.get("replicas", 1))
    total = int(status.get("replicas", 0))
    available = int(status.get("availableReplicas", 0))
    w(0, f"Replicas:\t{replicas} desired | {status.get('updatedReplicas', 0)} updated | "
         f"{total} total | {available} available | "
         f"{max(0, total - available)} unavailable")  # fmt: skip
    strategy = spec.get("strategy") or {}
    w(0, f"StrategyType:\t{strategy.get('type', 'RollingUpdate')}")
    w(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}")
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and rolling is not None:
        w(0, f"RollingUpdateStrategy:\t{rolling.get('maxUnavailable', '25%')} max unavailable, "
             f"{rolling.get('maxSurge', '25%')} max surge")  # fmt: skip
    _template(w, spec.get("template") or {})
    conditions = status.get("conditions") or []
    if conditions:
        w(0, "Conditions:")
        w(1, "Type\tStatus\tReason")
        w(1, "----\t------\t------")
        for c in conditions:
            w(1, f"{c.get('type')} \t{c.get('status')}\t{c.get('reason', '')}")
    revisions = status.get("revisions") or []
    name = meta.get("name", "")
    if revisions:
        newest = revisions[-1]
        old = [
            f"{name}-{r['templateHash']} "
            f"({_revision_pods(related.pods, r['templateHash'])}/0 replicas created)"
            for r in revisions[:-1]
            if _revision_pods(related.pods, r.get("templateHash", ""))
        ]
        created = _revision_pods(related.pods, newest.get("templateHash", ""))
        w(0, f"OldReplicaSets:\t{', '.join(old) or '<none>'}")
        w(0, f"NewReplicaSet:\t{name}-{newest.get('templateHash')} "
             f"({created}/{replicas} replicas created)")  # fmt: skip
    else:
        w(0, "OldReplicaSets:\t<none>")
        w(0, "NewReplicaSet:\t<none>")
    _events(w, related.events, now)
    return w.text()


def describe_statefulset(sts: Obj, related: Related, now: float) -> str:
    w = Writer()
    meta, spec, status = sts.get("metadata") or {}, sts.get("spec") or {}, sts.get("status") or {}
    _meta_top(w, sts)
    w(0, f"CreationTimestamp:\t{_when(meta.get('creationTimestamp'))}")
    w(0, f"Selector:\t{_selector(spec.get('selector'))}")
    _labels(w, 0, sts)
    _annotations(w, 0, sts)
    w(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {status.get('replicas', 0)} total")
    strategy = spec.get("updateStrategy") or {}
    w(0, f"Update Strategy:\t{strategy.get('type', 'RollingUpdate')}")
    if "rollingUpdate" in strategy:
        w(1, f"Partition:\t{(strategy['rollingUpdate'] or {}).get('partition', 0)}")
    phases = [(p.get("status") or {}).get("phase", "Pending") for p in related.pods]
    waiting = sum(1 for ph in phases if ph == "Pending")
    w(0, f"Pods Status:\t{phases.count('Running')} Running / {waiting} Waiting / "
         f"{phases.count('Succeeded')} Succeeded / {phases.count('Failed')} Failed")  # fmt: skip
    _template(w, spec.get("template") or {})
    claims = spec.get("volumeClaimTemplates") or []
    if not claims:
        w(0, "Volume Claims:\t<none>")
    else:
        w(0, "Volume Claims:")
        for claim in claims:
            cspec = claim.get("spec") or {}
            w(1, f"Name:\t{(claim.get('metadata') or {}).get('name')}")
            w(1, f"StorageClass:\t{cspec.get('storageClassName', '')}")
            _labels(w, 1, claim)
            _annotations(w, 1, claim)
            storage = ((cspec.get("resources") or {}).get("requests") or {}).get("storage", "")
            w(1, f"Capacity:\t{storage}")
            w(1, f"Access Modes:\t[{' '.join(cspec.get('accessModes') or [])}]")
    _events(w, related.events, now)
    return w.text()


def describe_service(svc: Obj, related: Related, now: float) -> str:
    w = Writer()
    spec, status = svc.get("spec") or {}, svc.get("status") or {}
    _meta_top(w, svc)
    _labels(w, 0, svc)
    _annotations(w, 0, svc)
    w(0, f"Selector:\t{_selector(spec.get('selector'))}")
    w(0, f"Type:\t{spec.get('type', 'ClusterIP')}")
    if spec.get("clusterIP"):
        w(0, f"IP:\t{spec['clusterIP']}")
        ips = spec.get("clusterIPs") or [spec["clusterIP"]]
        w(0, f"IPs:\t{','.join(ips)}")
    ingress = [i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get(
        "ingress") or []]  # fmt: skip
    if ingress:
        w(0, f"LoadBalancer Ingress:\t{', '.join(str(i) for i in ingress)}")
    endpoints = _endpoint_addresses(related.endpoints)
    for port in spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        protocol = port.get("protocol", "TCP")
        w(0, f"Port:\t{name}\t{port.get('port')}/{protocol}")
        w(0, f"TargetPort:\t{port.get('targetPort', port.get('port'))}/{protocol}")
        if port.get("nodePort"):
            w(0, f"NodePort:\t{name}\t{port['nodePort']}/{protocol}")
        w(0, f"Endpoints:\t{endpoints}")
    w(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}")
    _events(w, related.events, now)
    return w.text()


def _endpoint_addresses(endpoints: Obj | None) -> str:
    found: list[str] = []
    for subset in (endpoints or {}).get("subsets") or []:
        for address in subset.get("addresses") or []:
            for port in subset.get("ports") or [{}]:
                found.append(f"{address.get('ip')}:{port.get('port')}" if port else address["ip"])
    if not found:
        return "<none>"
    shown = ",".join(found[:3])
    return shown + (f" + {len(found) - 3} more..." if len(found) > 3 else "")


def _quantity(parse: Callable[[object], int], value: object) -> int:
    try:
        return parse(value) if value is not None else 0
    except QuantityError:
        return 0


def _share(used: int, total: int) -> str:
    return f"{used * 100 // total}%" if total else "0%"


def describe_node(node: Obj, related: Related, now: float) -> str:
    w = Writer()
    meta, spec, status = (
        node.get("metadata") or {},
        node.get("spec") or {},
        node.get("status") or {},
    )
    _meta_top(w, node, namespaced=False)
    w(0, "Roles:\t<none>")
    _labels(w, 0, node)
    _annotations(w, 0, node)
    w(0, f"CreationTimestamp:\t{_when(meta.get('creationTimestamp'))}")
    taints = spec.get("taints") or []
    w(0, f"Taints:\t{', '.join(t.get('key', '') for t in taints) or '<none>'}")
    w(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}")
    conditions = status.get("conditions") or []
    if conditions:
        w(0, "Conditions:")
        w(1, "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage")
        w(1, "----\t------\t-----------------\t------------------\t------\t-------")
        for c in conditions:
            w(1, f"{c.get('type')}\t{c.get('status')}\t{_when(c.get('lastHeartbeatTime'))}\t"
                 f"{_when(c.get('lastTransitionTime'))}\t{c.get('reason', '')}\t"
                 f"{c.get('message', '')}")  # fmt: skip
    w(0, "Addresses:")
    for a in status.get("addresses") or []:
        w(1, f"{a.get('type')}:\t{a.get('address')}")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        values = status.get(key) or {}
        if values:
            w(0, f"{title}:")
            for name, value in sorted(values.items()):
                w(1, f"{name}:\t{value}")
    info = status.get("nodeInfo") or {}
    w(0, "System Info:")
    for title, key in (
        ("Kernel Version", "kernelVersion"),
        ("OS Image", "osImage"),
        ("Operating System", "operatingSystem"),
        ("Architecture", "architecture"),
        ("Container Runtime Version", "containerRuntimeVersion"),
        ("Kubelet Version", "kubeletVersion"),
    ):
        w(1, f"{title}:\t{info.get(key, '')}")
    pods = [
        p for p in related.pods
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]  # fmt: skip
    allocatable = status.get("allocatable") or {}
    cpu_total = _quantity(parse_quantity_cpu, allocatable.get("cpu"))
    mem_total = _quantity(parse_quantity_memory, allocatable.get("memory"))
    w(0, f"Non-terminated Pods:\t({len(pods)} in total)")
    sums = [0, 0, 0, 0]
    if pods:
        w(1, "Namespace\tName\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge")
        w(1, "---------\t----\t------------\t----------\t---------------\t-------------\t---")
    for p in pods:
        use = _pod_resources(p)
        sums = [a + b for a, b in zip(sums, use, strict=True)]
        pm = p.get("metadata") or {}
        w(1, f"{pm.get('namespace', 'default')}\t{pm.get('name')}\t"
             f"{_cpu(use[0])} ({_share(use[0], cpu_total)})\t"
             f"{_cpu(use[1])} ({_share(use[1], cpu_total)})\t"
             f"{_mem(use[2])} ({_share(use[2], mem_total)})\t"
             f"{_mem(use[3])} ({_share(use[3], mem_total)})\t"
             f"{_since(pm.get('creationTimestamp'), now)}")  # fmt: skip
    w(0, "Allocated resources:")
    w(1, "(Total limits may be over 100 percent, i.e., overcommitted.)")
    w(1, "Resource\tRequests\tLimits")
    w(1, "--------\t--------\t------")
    w(1, f"cpu\t{_cpu(sums[0])} ({_share(sums[0], cpu_total)})\t"
         f"{_cpu(sums[1])} ({_share(sums[1], cpu_total)})")  # fmt: skip
    w(1, f"memory\t{_mem(sums[2])} ({_share(sums[2], mem_total)})\t"
         f"{_mem(sums[3])} ({_share(sums[3], mem_total)})")  # fmt: skip
    _events(w, related.events, now)
    return w.text()


def _cpu(millis: int) -> str:
    if millis == 0:
        return "0"
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _mem(num_bytes: int) -> str:
    if num_bytes == 0:
        return "0"
    for suffix, power in (("Gi", 3), ("Mi", 2), ("Ki", 1)):
        if num_bytes % 1024**power == 0:
            return f"{num_bytes // 1024**power}{suffix}"
    return str(num_bytes)


def _pod_resources(pod: Obj) -> list[int]:
    """(cpu requests, cpu limits, memory requests, memory limits) summed over containers."""
    total = [0, 0, 0, 0]
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        total[0] += _quantity(parse_quantity_cpu, requests.get("cpu", limits.get("cpu")))
        total[1] += _quantity(parse_quantity_cpu, limits.get("cpu"))
        total[2] += _quantity(parse_quantity_memory, requests.get("memory", limits.get("memory")))
        total[3] += _quantity(parse_quantity_memory, limits.get("memory"))
    return total


def describe_pvc(pvc: Obj, related: Related, now: float) -> str:
    w = Writer()
    meta, spec, status = pvc.get("metadata") or {}, pvc.get("spec") or {}, pvc.get("status") or {}
    _meta_top(w, pvc)
    w(0, f"StorageClass:\t{spec.get('storageClassName', '')}")
    w(0, f"Status:\t{status.get('phase', 'Pending')}")
    w(0, f"Volume:\t{spec.get('volumeName', '')}")
    _labels(w, 0, pvc)
    _annotations(w, 0, pvc)
    w(0, f"Finalizers:\t[{' '.join(meta.get('finalizers') or [])}]")
    w(0, f"Capacity:\t{(status.get('capacity') or {}).get('storage', '')}")
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
             "ReadWriteOncePod": "RWOP"}  # fmt: skip
    modes = status.get("accessModes") or []
    w(0, f"Access Modes:\t{','.join(short.get(m, m) for m in modes)}")
    w(0, f"VolumeMode:\t{spec.get('volumeMode', 'Filesystem')}")
    name = meta.get("name")
    users = sorted(
        str((p.get("metadata") or {}).get("name"))
        for p in related.pods
        if any(
            (v.get("persistentVolumeClaim") or {}).get("claimName") == name
            for v in (p.get("spec") or {}).get("volumes") or []
        )
    )
    w(0, f"Used By:\t{users[0] if users else '<none>'}")
    for user in users[1:]:
        w(0, f"\t{user}")
    _events(w, related.events, now)
    return w.text()


def describe_secret(secret: Obj, related: Related, now: float) -> str:
    """Sizes only: a secret's values are never printed."""
    w = Writer()
    _meta_top(w, secret)
    _labels(w, 0, secret)
    _annotations(w, 0, secret)
    w(0, "")
    w(0, f"Type:\t{secret.get('type', 'Opaque')}")
    w(0, "")
    w(0, "Data")
    w(0, "====")
    for key, value in sorted((secret.get("data") or {}).items()):
        try:
            size = len(base64.b64decode(str(value), validate=True))
        except (binascii.Error, ValueError):
            size = len(str(value))
        w(0, f"{key}:\t{size} bytes")
    return w.text()


def describe_configmap(cm: Obj, related: Related, now: float) -> str:
    w = Writer()
    _meta_top(w, cm)
    _labels(w, 0, cm)
    _annotations(w, 0, cm)
    w(0, "")
    w(0, "Data")
    w(0, "====")
    for key, value in sorted((cm.get("data") or {}).items()):
        w(0, f"{key}:")
        w(0, "----")
        w(0, str(value))
        w(0, "")
    w(0, "")
    w(0, "BinaryData")
    w(0, "====")
    w(0, "")
    _events(w, related.events, now)
    return w.text()


DESCRIBERS: dict[str, Callable[[Obj, Related, float], str]] = {
    "Pod": describe_pod,
    "Deployment": describe_deployment,
    "StatefulSet": describe_statefulset,
    "Service": describe_service,
    "Node": describe_node,
    "PersistentVolumeClaim": describe_pvc,
    "Secret": describe_secret,
    "ConfigMap": describe_configmap,
}
