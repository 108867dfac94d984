"""Model objects -> Kubernetes-shaped dicts: what `-o json|yaml` print and tables read.

One function per kind turns a stored dataclass into the apiVersion/kind/
metadata/spec/status shape kubectl users know, with the fields they read
(pod spec.nodeName and status.containerStatuses, deployment status counts,
node conditions and capacity, service load-balancer ingress). Pinnace extras
ride along where Kubernetes has no field for them: a pod's status.portMap and
status.endpoints (host:port pairs the load balancer targets).

Deployment and Service specs are written in manifest form, so rendering an
object and applying the output again declares the same thing (the manifest
parser ignores the server-filled metadata and status). Rendering is pure and
deterministic: every time printed comes from the object itself; `now` is the
caller's clock, part of the signature so kinds whose output depends on the
present (none today) need no change at the call sites.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from master.api.managedfields import render_entries
from master.api.render_config import (
    render_config_map,
    render_env_from,
    render_env_var,
    render_secret,
    render_service_account,
)
from master.api.render_ingress import (
    render_ingress,
    render_ingress_classes,
    render_stored_ingress_class,
)
from master.api.render_storage import (
    render_claim,
    render_volume,
    render_volume_mount,
    render_volume_object,
)
from master.api.render_workloads import render_statefulset
from master.app.podnetwork import CONDITION as POD_IP_CONDITION
from master.app.podnetwork import PodNetwork, pod_address
from master.controllers.deployment import TEMPLATE_HASH_LABEL
from master.controllers.rolling import surge_and_unavailable
from master.lb.model import LbService
from master.manifest.quantities import format_cpu, format_memory, format_memory_ki
from master.model import (
    ConfigMap,
    Container,
    ContainerStatus,
    Deployment,
    Event,
    Ingress,
    IngressClass,
    Namespace,
    Node,
    ObjectMeta,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    PodDNSConfig,
    PodSpec,
    Probe,
    Resources,
    Secret,
    SecurityContext,
    Service,
    ServiceAccount,
    ServiceType,
    StatefulSet,
    StoredObject,
    split_ref,
)

Obj = dict[str, Any]


def rfc3339(t: float) -> str | None:
    """Seconds since the epoch as Kubernetes prints times ("2024-05-01T12:00:00Z"); 0 is null."""
    if t <= 0:
        return None
    whole = int(t)
    if t - whole >= 0.999999:
        # Rounded to microseconds, this may be the next second: not from the memo.
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = _RFC3339.get(whole)
    if text is None:
        if len(_RFC3339) >= 4096:
            _RFC3339.clear()
        text = _RFC3339[whole] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return text


# Texts of whole seconds: every object rendered (each write the master records in
# managedFields renders two) prints its times, and at scale they fall in a few seconds.
_RFC3339: dict[int, str] = {}


def _int_or_str(text: str) -> int | str:
    """IntOrString fields (targetPort, maxSurge): numbers print as numbers."""
    return int(text) if text.isdigit() else text


def _metadata(meta: ObjectMeta, labels: dict[str, str] | None = None) -> Obj:
    out = {
        "name": meta.name,
        "namespace": meta.namespace,
        "uid": meta.uid,
        "resourceVersion": str(meta.resource_version),
        "generation": meta.generation,
        "creationTimestamp": rfc3339(meta.created_at),
        "labels": dict(meta.labels if labels is None else labels),
        "annotations": dict(meta.annotations),
    }
    if meta.managed_fields:
        # Clients hide them unless asked (kubectl --show-managed-fields).
        out["managedFields"] = render_entries(meta.managed_fields, rfc3339)
    return out


def _amounts(r: Resources) -> Obj:
    out: Obj = {}
    if r.cpu_millis:
        out["cpu"] = format_cpu(r.cpu_millis)
    if r.memory_bytes:
        out["memory"] = format_memory(r.memory_bytes)
    return out


def render_probe(p: Probe) -> Obj:
    """A probe as a manifest spells it, defaults included (as kubectl shows them)."""
    handler: Obj
    if p.kind == "exec":
        handler = {"command": list(p.command)}
    else:
        port: int | str = int(p.port) if p.port.isdigit() else p.port
        handler = {"port": port}
        if p.kind == "httpGet":
            handler = {"path": p.path, **handler, "scheme": p.scheme}
            if p.http_headers:
                handler["httpHeaders"] = [
                    {"name": h.name, "value": h.value} for h in p.http_headers
                ]
    return {
        str(p.kind): handler,
        "initialDelaySeconds": p.initial_delay_seconds,
        "timeoutSeconds": p.timeout_seconds,
        "periodSeconds": p.period_seconds,
        "successThreshold": p.success_threshold,
        "failureThreshold": p.failure_threshold,
    }


def render_container(c: Container) -> Obj:
    """A container as it appears in a manifest (empty fields left out, as kubectl does)."""
    out: Obj = {"name": c.name, "image": c.image}
    if c.command:
        out["command"] = list(c.command)
    if c.args:
        out["args"] = list(c.args)
    if c.env:
        out["env"] = [render_env_var(e) for e in c.env]
    if c.env_from:
        out["envFrom"] = [render_env_from(s) for s in c.env_from]
    if c.ports:
        ports = []
        for p in c.ports:
            port: Obj = {"containerPort": p.container_port, "protocol": p.protocol}
            if p.name:
                port["name"] = p.name
            if p.host_port:
                port["hostPort"] = p.host_port
            ports.append(port)
        out["ports"] = ports
    resources: Obj = {}
    if requests := _amounts(c.requests):
        resources["requests"] = requests
    if limits := _amounts(c.limits):
        resources["limits"] = limits
    out["resources"] = resources
    if c.readiness_probe is not None:
        out["readinessProbe"] = render_probe(c.readiness_probe)
    if c.liveness_probe is not None:
        out["livenessProbe"] = render_probe(c.liveness_probe)
    out["imagePullPolicy"] = c.image_pull_policy
    if c.volume_mounts:
        out["volumeMounts"] = [render_volume_mount(m) for m in c.volume_mounts]
    for key, on in (("stdin", c.stdin), ("stdinOnce", c.stdin_once), ("tty", c.tty)):
        if on:
            out[key] = True
    if c.security_context is not None:
        out["securityContext"] = render_security_context(c.security_context)
    return out


def render_security_context(context: SecurityContext) -> Obj:
    """The fields set, under Kubernetes' names."""
    fields = (
        ("runAsUser", context.run_as_user),
        ("runAsGroup", context.run_as_group),
        ("runAsNonRoot", context.run_as_non_root),
        ("readOnlyRootFilesystem", context.read_only_root_filesystem),
        ("fsGroup", context.fs_group),
        ("fsGroupChangePolicy", context.fs_group_change_policy),
        (
            "supplementalGroups",
            None if context.supplemental_groups is None else list(context.supplemental_groups),
        ),
    )
    return {key: value for key, value in fields if value is not None}


def render_pod_spec(spec: PodSpec) -> Obj:
    out: Obj = {
        "containers": [render_container(c) for c in spec.containers],
        "restartPolicy": spec.restart_policy.value,
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
    }
    if spec.service_account_name:
        out["serviceAccountName"] = spec.service_account_name
    if spec.volumes:
        out["volumes"] = [render_volume(v) for v in spec.volumes]
    # Kubernetes shows its defaults for these.
    out["dnsPolicy"] = spec.dns_policy or "ClusterFirst"
    out["enableServiceLinks"] = spec.enable_service_links is not False
    if spec.dns_config is not None:
        out["dnsConfig"] = render_dns_config(spec.dns_config)
    if spec.security_context is not None:
        out["securityContext"] = render_security_context(spec.security_context)
    return out


def render_dns_config(config: PodDNSConfig) -> Obj:
    out: Obj = {}
    if config.nameservers:
        out["nameservers"] = list(config.nameservers)
    if config.searches:
        out["searches"] = list(config.searches)
    if config.options:
        out["options"] = [
            {"name": o.name} if o.value is None else {"name": o.name, "value": o.value}
            for o in config.options
        ]
    return out


def _condition(kind: str, ok: bool, at: float, reason: str = "") -> Obj:
    out: Obj = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(at),
    }
    if reason and not ok:
        out["reason"] = reason
    return out


def render_container_statuses(statuses: Iterable[ContainerStatus]) -> list[Obj]:
    """A pod status's `containerStatuses` (one atomic field of a status write's ledger:
    master/api/fieldowners.py compares them whole)."""
    return [_container_status(c) for c in statuses]


def _container_status(cs: ContainerStatus) -> Obj:
    state: Obj
    if cs.state == "running":
        state = {"running": {"startedAt": rfc3339(cs.started_at)}}
    elif cs.state == "terminated":
        state = {
            "terminated": {
                "exitCode": cs.exit_code,
                "reason": cs.reason,
                "message": cs.message,
                "startedAt": rfc3339(cs.started_at),
            }
        }
    else:
        state = {"waiting": {"reason": cs.reason, "message": cs.message}}
    container_id = cs.container_id
    if container_id and "://" not in container_id:
        container_id = "docker://" + container_id
    return {
        "name": cs.name,
        "state": state,
        "ready": cs.ready,
        "restartCount": cs.restart_count,
        "image": cs.image,
        # Required in Kubernetes' schema (the Python client refuses a status without it):
        # docker-pullable://REPO@DIGEST or docker://sha256:ID as the agent reports it,
        # empty while no container exists (as the kubelet's).
        "imageID": cs.image_id,
        "containerID": container_id,
        "started": cs.state == "running",
    }


def render_pod(pod: Pod, now: float, network: PodNetwork | None = None) -> Obj:
    labels = dict(pod.meta.labels)
    if pod.template_hash:
        labels.setdefault(TEMPLATE_HASH_LABEL, pod.template_hash)
    metadata = _metadata(pod.meta, labels)
    if pod.owner:
        kind, _, owner = pod.owner.rpartition("/")
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": kind or "Deployment",
                "name": owner,
                "controller": True,
            }
        ]
    if pod.deletion_requested_at:
        metadata["deletionTimestamp"] = rfc3339(pod.deletion_requested_at)
        metadata["deletionGracePeriodSeconds"] = pod.stop_grace_seconds
    spec = render_pod_spec(pod.spec)
    spec["nodeName"] = pod.node_name
    status = render_pod_status(pod, network)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def render_pod_status(pod: Pod, network: PodNetwork | None = None) -> Obj:
    """A pod's `status` as render_pod renders it (a status write's ledger reads only this:
    master/api/fieldowners.py)."""
    st = pod.status
    scheduled_at = st.started_at or pod.meta.created_at
    containers_ready = bool(st.container_statuses) and all(c.ready for c in st.container_statuses)
    port_map = dict(st.port_map)
    endpoints = [f"{st.host_ip}:{hp}" for hp in port_map.values()] if st.host_ip else []
    # The pod's own address where every node reaches it (host-gw), else its node's
    # (master/app/podnetwork.py); `endpoints` stays where its ports are published.
    address = pod_address(pod, network)
    conditions = [
        _condition("PodScheduled", bool(pod.node_name), scheduled_at, "Unschedulable"),
        _condition("ContainersReady", containers_ready, scheduled_at, "ContainersNotReady"),
        _condition("Ready", st.ready, scheduled_at, "ContainersNotReady"),
    ]
    if address.routable is not None:
        routable = _condition(POD_IP_CONDITION, address.routable, scheduled_at, "NodeAddress")
        if address.why:
            routable["message"] = address.why
        conditions.append(routable)
    status: Obj = {
        "phase": str(st.phase),
        "reason": st.reason,
        "message": st.message,
        "hostIP": st.host_ip,
        "hostIPs": [{"ip": st.host_ip}] if st.host_ip else [],
        "podIP": address.ip,
        "podIPs": [{"ip": address.ip}] if address.ip else [],
        "startTime": rfc3339(st.started_at),
        "conditions": conditions,
        "containerStatuses": render_container_statuses(st.container_statuses),
        "portMap": port_map,
        "endpoints": endpoints,
    }
    return status


def render_deployment(dep: Deployment) -> Obj:
    strategy: Obj = {"type": dep.strategy.value}
    if dep.strategy == "RollingUpdate":
        strategy["rollingUpdate"] = {
            "maxSurge": _int_or_str(dep.rolling_update.max_surge),
            "maxUnavailable": _int_or_str(dep.rolling_update.max_unavailable),
        }
    st = dep.status
    metadata = _metadata(dep.meta)
    if dep.revision:
        metadata["annotations"] = {
            **metadata.get("annotations", {}),
            "deployment.kubernetes.io/revision": str(dep.revision),
        }
    complete = (
        st.updated_replicas == dep.replicas
        and st.replicas == dep.replicas
        and st.available_replicas == dep.replicas
    )
    progressing: Obj = {
        "type": "Progressing",
        "status": "True",
        "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
    }
    if st.stalled_reason:
        progressing = {
            "type": "Progressing",
            "status": "False",
            "reason": "RolloutStalled",
            "message": st.stalled_reason,
        }
    available = st.available_replicas >= dep.replicas - _max_unavailable(dep)
    conditions = [
        {
            "type": "Available",
            "status": "True" if available else "False",
            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
        },
        progressing,
    ]
    revisions = [
        {
            "revision": r.revision,
            "templateHash": r.template_hash,
            "images": [c.image for c in r.template.spec.containers],
            "changeCause": r.change_cause,
            "createdAt": rfc3339(r.created_at),
        }
        for r in dep.history
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": dep.replicas,
            "selector": {"matchLabels": dict(dep.selector)},
            "template": {
                "metadata": {"labels": dict(dep.template.labels)},
                "spec": render_pod_spec(dep.template.spec),
            },
            "strategy": strategy,
        },
        "status": {
            "observedGeneration": st.observed_generation,
            "replicas": st.replicas,
            "readyReplicas": st.ready_replicas,
            "updatedReplicas": st.updated_replicas,
            "availableReplicas": st.available_replicas,
            "conditions": conditions,
            "revisions": revisions,
        },
    }


def _max_unavailable(dep: Deployment) -> int:
    if dep.strategy != "RollingUpdate":
        return dep.replicas
    return surge_and_unavailable(dep)[1]


def render_service(svc: Service) -> Obj:
    ports = []
    for p in svc.ports:
        port: Obj = {
            "port": p.port,
            "targetPort": _int_or_str(p.target_port),
            "protocol": p.protocol,
        }
        if p.name:
            port["name"] = p.name
        if p.app_protocol:
            port["appProtocol"] = p.app_protocol
        if p.node_port:
            port["nodePort"] = p.node_port
        ports.append(port)
    ingress = [{"ip": svc.ingress_ip}] if svc.ingress_ip else []
    spec: Obj = {"type": svc.type.value, "selector": dict(svc.selector), "ports": ports}
    if svc.cluster_ip:
        # As Kubernetes shows them: the address, and the one-item list (single stack).
        spec["clusterIP"] = svc.cluster_ip
        spec["clusterIPs"] = [svc.cluster_ip]
    if svc.load_balancer_ip:
        spec["loadBalancerIP"] = svc.load_balancer_ip
    if svc.publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    if svc.type == ServiceType.LOAD_BALANCER:
        # Kubernetes defaults it to true and shows it on every LoadBalancer Service.
        spec["allocateLoadBalancerNodePorts"] = svc.allocate_node_ports is not False
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(svc.meta),
        "spec": spec,
        "status": _service_status(svc, ingress),
    }


def _service_status(svc: Service, ingress: list[dict[str, str]]) -> Obj:
    status: Obj = {"loadBalancer": {"ingress": ingress}}
    conditions: list[Obj] = []
    if svc.lb_reason:
        # Shaped like metav1.Condition, as Kubernetes' Service.status.conditions are.
        conditions.append(
            {
                "type": "LoadBalancerServing",
                "status": "False",
                "reason": svc.lb_reason,
                "message": svc.lb_message,
                "lastTransitionTime": rfc3339(svc.lb_since),
            }
        )
    if svc.proxy_problems:
        # Node proxies that cannot listen on a port of its cluster IP, and why.
        first = min(svc.proxy_problems, key=lambda p: p.since)
        conditions.append(
            {
                "type": "NodeProxyServing",
                "status": "False",
                "reason": first.reason,
                "message": "; ".join(
                    f"node {p.node}: port {p.port}: {p.message}" for p in svc.proxy_problems
                ),
                "lastTransitionTime": rfc3339(first.since),
            }
        )
    if conditions:
        status["conditions"] = conditions
    return status


def _node_resources(r: Resources) -> Obj:
    return {"cpu": format_cpu(r.cpu_millis), "memory": format_memory_ki(r.memory_bytes)}


def _session_condition(lost_at: float) -> list[Obj]:
    """While the agent's stream is broken: shown until it reconnects or the lease expires."""
    if not lost_at:
        return []
    return [
        {
            "type": "AgentConnected",
            "status": "False",
            "reason": "SessionLost",
            "message": "the agent's session ended; no new pods until it is back",
            "lastTransitionTime": rfc3339(lost_at),
        }
    ]


def render_node(node: Node) -> Obj:
    st = node.status
    if st.ready:
        ready = "True"
    elif st.unknown or (not st.last_heartbeat and not st.last_transition):
        ready = "Unknown"  # never heard from
    else:
        ready = "False"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _metadata(node.meta),
        "spec": {
            "unschedulable": node.unschedulable,
            **({"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]} if node.pod_cidr else {}),
        },
        "status": {
            "capacity": _node_resources(node.capacity),
            "allocatable": _node_resources(node.allocatable),
            "addresses": [
                {"type": "InternalIP", "address": node.address},
                {"type": "Hostname", "address": node.meta.name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": st.reason,
                    "message": st.message,
                    "lastHeartbeatTime": rfc3339(st.last_heartbeat),
                    "lastTransitionTime": rfc3339(st.last_transition),
                },
                *_session_condition(st.session_lost_at),
            ],
            "nodeInfo": {
                "kubeletVersion": st.agent_version,
                "osImage": st.os,
                "kernelVersion": st.kernel,
                "containerRuntimeVersion": st.container_runtime,
            },
        },
    }


def render_event(ev: Event) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": _metadata(ev.meta),
        "involvedObject": {
            "kind": ev.involved_kind,
            "name": ev.involved_name,
            "namespace": ev.meta.namespace,
        },
        "reason": ev.reason,
        "message": ev.message,
        "type": ev.type,
        "count": ev.count,
        "firstTimestamp": rfc3339(ev.first_seen),
        "lastTimestamp": rfc3339(ev.last_seen),
        "source": {"component": ev.source},
    }


def render_object(obj: StoredObject, now: float, network: PodNetwork | None = None) -> Obj:
    """Any stored object in Kubernetes' shape; `network`: which nodes' pods are shown at
    their own addresses (master/app/podnetwork.py; None: none)."""
    if isinstance(obj, ConfigMap):
        return render_config_map(obj, _metadata(obj.meta))
    if isinstance(obj, Secret):
        return render_secret(obj, _metadata(obj.meta))
    if isinstance(obj, ServiceAccount):
        return render_service_account(obj, _metadata(obj.meta))
    if isinstance(obj, Pod):
        return render_pod(obj, now, network)
    if isinstance(obj, Deployment):
        return render_deployment(obj)
    if isinstance(obj, Service):
        return render_service(obj)
    if isinstance(obj, Node):
        return render_node(obj)
    if isinstance(obj, StatefulSet):
        return render_statefulset(obj, _metadata(obj.meta), render_pod_spec)
    if isinstance(obj, PersistentVolumeClaim):
        return render_claim(obj, _metadata(obj.meta))
    if isinstance(obj, PersistentVolume):
        return render_volume_object(obj, _metadata(obj.meta))
    if isinstance(obj, Ingress):
        return render_ingress(obj, _metadata(obj.meta))
    if isinstance(obj, Namespace):
        return render_namespace(obj)
    if isinstance(obj, IngressClass):
        return render_stored_ingress_class(obj, _metadata(obj.meta))
    return render_event(obj)


def render_ingress_class_list(
    state_classes: Iterable[StoredObject], created: str | None
) -> list[Obj]:
    """The built-in IngressClass and the stored ones (render_ingress.py)."""
    pairs = [(c, _metadata(c.meta)) for c in state_classes if isinstance(c, IngressClass)]
    return render_ingress_classes(pairs, created)


def render_namespace(ns: Namespace) -> Obj:
    """A Namespace as Kubernetes shows it: cluster-scoped, `status.phase` Active or
    Terminating (with `metadata.deletionTimestamp` once deleted)."""
    meta = _metadata(ns.meta)
    del meta["namespace"]
    meta.pop("generation", None)
    if ns.deletion_requested_at:
        meta["deletionTimestamp"] = rfc3339(ns.deletion_requested_at)
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": meta,
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": ns.phase},
    }


def render_endpoints(svc: Service, ports: Sequence[LbService]) -> Obj:
    """Kubernetes' Endpoints for a service: ready and not-ready addresses per port.

    Pods publish on their node's address with a port of their own, so each
    endpoint is its own subset (address + the port it is reached on).
    """
    subsets: list[Obj] = []
    for port in ports:
        for ep in port.endpoints:
            pod_ns, pod_name = split_ref(ep.pod)
            target = {"kind": "Pod", "name": pod_name, "namespace": pod_ns}
            address: Obj = {"ip": ep.address, "targetRef": target}
            key = "addresses" if ep.ready and not ep.draining else "notReadyAddresses"
            port_obj: Obj = {"port": ep.port, "protocol": "TCP"}
            if port.port_name:
                port_obj["name"] = port.port_name
            subsets.append({key: [address], "ports": [port_obj]})
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": _metadata(svc.meta),
        "subsets": subsets,
    }
