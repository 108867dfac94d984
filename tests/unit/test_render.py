"""Kubernetes-shaped rendering of every kind, and the apply -> get -o yaml -> apply round trip."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from master.api.render import render_object
from master.manifest import parse_manifests
from master.model import (
    ConfigMap,
    Container,
    ContainerPort,
    ContainerState,
    ContainerStatus,
    Deployment,
    DeploymentStatus,
    EnvVar,
    Event,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    Resources,
    Secret,
    Service,
    ServiceAccount,
    ServiceType,
)
from tests.unit.test_manifest_support import DEPLOYMENT, SERVICE, dump, mutate

NOW = 1_700_000_100.0
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
T0_TEXT = "2023-11-14T22:13:20Z"


def meta(name: str, **labels: str) -> ObjectMeta:
    return ObjectMeta(name=name, uid=f"uid-{name}", labels=labels, resource_version=7,
                      generation=2, created_at=T0)  # fmt: skip


def pod() -> Pod:
    spec = PodSpec(
        containers=(
            Container(
                name="web",
                image="nginx:1.25",
                ports=(ContainerPort(80, "TCP", "http"),),
                requests=Resources(250, 64 * 1024**2),
            ),
            Container(name="side", image="busybox"),
        )
    )
    status = PodStatus(
        phase=PodPhase.RUNNING,
        host_ip="10.0.0.5",
        port_map={"80/TCP": 32768},
        container_statuses=(
            ContainerStatus(
                name="web", state=ContainerState.RUNNING, ready=True, restart_count=2,
                container_id="abc123", image="nginx:1.25", started_at=T0,
                image_id="docker-pullable://nginx@sha256:" + "cd" * 32,
            ),
            ContainerStatus(
                name="side", state=ContainerState.WAITING, reason="CrashLoopBackOff",
                message="back-off 10s", restart_count=5, image="busybox",
            ),
        ),
        ready=False,
        started_at=T0,
    )  # fmt: skip
    return Pod(
        meta=meta("web-5d8f-abcde", app="web"),
        spec=spec,
        owner="web",
        template_hash="5d8f",
        node_name="node-1",
        epoch=1,
        deletion_requested_at=T0 + 60,
        status=status,
    )


def test_common_metadata_shape() -> None:
    out = render_object(pod(), NOW)

    assert out["apiVersion"] == "v1" and out["kind"] == "Pod"
    assert out["metadata"]["name"] == "web-5d8f-abcde"
    assert out["metadata"]["namespace"] == "default"
    assert out["metadata"]["uid"] == "uid-web-5d8f-abcde"
    assert out["metadata"]["resourceVersion"] == "7"
    assert out["metadata"]["generation"] == 2
    assert out["metadata"]["creationTimestamp"] == T0_TEXT


def test_pod_shape() -> None:
    out = render_object(pod(), NOW)

    md, spec, status = out["metadata"], out["spec"], out["status"]
    assert md["labels"] == {"app": "web", "pod-template-hash": "5d8f"}
    assert md["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": True}
    ]
    assert md["deletionTimestamp"] == "2023-11-14T22:14:20Z"
    assert spec["nodeName"] == "node-1"
    assert spec["containers"][0] == {
        "name": "web",
        "image": "nginx:1.25",
        "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
        "imagePullPolicy": "IfNotPresent",
    }
    assert status["phase"] == "Running"
    assert status["hostIP"] == status["podIP"] == "10.0.0.5"
    assert status["portMap"] == {"80/TCP": 32768}
    assert status["endpoints"] == ["10.0.0.5:32768"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["PodScheduled"] == "True" and conditions["Ready"] == "False"
    web, side = status["containerStatuses"]
    assert web == {
        "name": "web",
        "state": {"running": {"startedAt": T0_TEXT}},
        "ready": True,
        "restartCount": 2,
        "image": "nginx:1.25",
        "imageID": "docker-pullable://nginx@sha256:" + "cd" * 32,
        "containerID": "docker://abc123",
        "started": True,
    }
    assert side["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}
    assert side["restartCount"] == 5 and side["started"] is False
    assert status["reason"] == "" and status["message"] == ""


def test_pending_pod_and_terminated_container() -> None:
    p = dataclasses.replace(
        pod(),
        node_name="",
        owner="",
        template_hash="",
        deletion_requested_at=0.0,
        status=PodStatus(
            container_statuses=(
                ContainerStatus(
                    name="web", state=ContainerState.TERMINATED, reason="Error", exit_code=3
                ),
            ),
            reason="Unschedulable",
            message="0/2 nodes are available: 2 Insufficient cpu.",
        ),
    )

    out = render_object(p, NOW)

    assert "ownerReferences" not in out["metadata"]
    assert "deletionTimestamp" not in out["metadata"]
    assert out["spec"]["nodeName"] == ""
    assert out["status"]["phase"] == "Pending"
    assert out["status"]["reason"] == "Unschedulable"
    assert out["status"]["endpoints"] == []
    scheduled = next(c for c in out["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["status"] == "False" and scheduled["reason"] == "Unschedulable"
    assert out["status"]["containerStatuses"][0]["state"] == {
        "terminated": {"exitCode": 3, "reason": "Error", "message": "", "startedAt": None}
    }


def test_deployment_shape() -> None:
    (dep,) = parse_manifests([("d.yaml", dump(DEPLOYMENT))]).objects
    assert isinstance(dep, Deployment)
    dep = dataclasses.replace(dep, meta=meta("web"), status=DeploymentStatus(2, 3, 2, 3, 1))

    out = render_object(dep, NOW)

    assert out["apiVersion"] == "apps/v1" and out["kind"] == "Deployment"
    assert out["spec"]["replicas"] == 2
    assert out["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert out["spec"]["template"]["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert out["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    status = dict(out["status"])
    conditions = status.pop("conditions")
    assert status.pop("revisions") == []
    assert status == {
        "observedGeneration": 2,
        "replicas": 3,
        "readyReplicas": 2,
        "updatedReplicas": 3,
        "availableReplicas": 1,
    }
    # 1 of 3 available is below replicas - maxUnavailable (25% of 3 rounds down to 0).
    assert conditions == [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
        {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
    ]


def test_service_shape() -> None:
    svc = Service(
        meta=meta("web"),
        selector={"app": "web"},
        ports=(),
        type=ServiceType.LOAD_BALANCER,
        ingress_ip="192.0.2.10",
    )
    (parsed,) = parse_manifests([("s.yaml", dump(SERVICE))]).objects
    assert isinstance(parsed, Service)
    svc = dataclasses.replace(svc, ports=parsed.ports)
    named = mutate(SERVICE, "spec.ports[0]", {"port": 80, "targetPort": "http", "nodePort": 30080})
    (with_name,) = parse_manifests([("s.yaml", dump(named))]).objects
    assert isinstance(with_name, Service)

    out = render_object(svc, NOW)
    pending = render_object(dataclasses.replace(with_name, meta=meta("web")), NOW)

    assert out["spec"] == {
        "type": "LoadBalancer",
        "selector": {"app": "web"},
        "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "allocateLoadBalancerNodePorts": True,
    }
    assert out["status"] == {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    assert pending["spec"]["ports"] == [
        {"port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080}
    ]
    assert pending["status"]["loadBalancer"]["ingress"] == []


def test_node_shape() -> None:
    node = Node(
        meta=meta("node-1"),
        address="10.0.0.5",
        capacity=Resources(2000, 8 * 1024**3),
        allocatable=Resources(1500, 7 * 1024**3),
        unschedulable=True,
        status=NodeStatus(
            ready=True, reason="NodeReady", message="sending heartbeats", last_heartbeat=T0,
            last_transition=T0, agent_version="pinnace/0.1.0", os="Debian GNU/Linux 12",
            kernel="6.1.0", container_runtime="docker://24.0.7",
        ),
    )  # fmt: skip

    out = render_object(node, NOW)

    assert out["spec"] == {"unschedulable": True}
    assert out["status"]["capacity"] == {"cpu": "2", "memory": "8388608Ki"}
    assert out["status"]["allocatable"] == {"cpu": "1500m", "memory": "7340032Ki"}
    assert {"type": "InternalIP", "address": "10.0.0.5"} in out["status"]["addresses"]
    assert out["status"]["conditions"] == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "NodeReady",
            "message": "sending heartbeats",
            "lastHeartbeatTime": T0_TEXT,
            "lastTransitionTime": T0_TEXT,
        }
    ]
    assert out["status"]["nodeInfo"] == {
        "kubeletVersion": "pinnace/0.1.0",
        "osImage": "Debian GNU/Linux 12",
        "kernelVersion": "6.1.0",
        "containerRuntimeVersion": "docker://24.0.7",
    }


def test_node_ready_status_false_and_unknown() -> None:
    base = Node(meta("n"), "10.0.0.6", Resources(1000, 1024**3), Resources(1000, 1024**3))
    lost = dataclasses.replace(
        base, status=NodeStatus(ready=False, reason="NodeNotReady", last_transition=T0)
    )

    never = render_object(base, NOW)["status"]["conditions"][0]
    gone = render_object(lost, NOW)["status"]["conditions"][0]

    assert never["status"] == "Unknown"
    assert gone["status"] == "False" and gone["reason"] == "NodeNotReady"


def test_event_shape() -> None:
    ev = Event(
        meta=meta("web.1"),
        involved_kind="Pod",
        involved_name="web-5d8f-abcde",
        reason="Scheduled",
        message="assigned to node-1",
        count=3,
        first_seen=T0,
        last_seen=T0 + 60,
        source="scheduler",
    )

    out = render_object(ev, NOW)

    assert out["kind"] == "Event"
    assert out["involvedObject"] == {
        "kind": "Pod",
        "name": "web-5d8f-abcde",
        "namespace": "default",
    }
    assert (out["reason"], out["message"], out["type"], out["count"]) == (
        "Scheduled",
        "assigned to node-1",
        "Normal",
        3,
    )
    assert out["firstTimestamp"] == T0_TEXT
    assert out["lastTimestamp"] == "2023-11-14T22:14:20Z"
    assert out["source"] == {"component": "scheduler"}


def _rich_deployment() -> dict[str, Any]:
    container = {
        "name": "app",
        "image": "registry.local/app:1",
        "command": ["/bin/app"],
        "args": ["--port", "8080"],
        "env": [
            {"name": "MODE", "value": "prod"},
            {
                "name": "PW",
                "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}},
            },
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
        ],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "ports": [{"containerPort": 8080, "name": "http", "hostPort": 18080}],
        "resources": {
            "requests": {"cpu": "0.25", "memory": "129e6"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "imagePullPolicy": "Never",
    }
    doc = mutate(DEPLOYMENT, "spec.template.spec.containers[0]", container)
    doc = mutate(doc, "metadata.annotations", {"team": "web"})
    doc = mutate(doc, "spec.template.spec.terminationGracePeriodSeconds", 5)
    return mutate(doc, "spec.strategy", {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})


def _spec_of(obj: object) -> tuple[Any, ...]:
    if isinstance(obj, Deployment):
        return (obj.meta.labels, obj.meta.annotations, obj.replicas, obj.selector,
                obj.template, obj.strategy, obj.rolling_update)  # fmt: skip
    if isinstance(obj, Service):
        return (obj.meta.labels, obj.meta.annotations, obj.selector, obj.ports, obj.type)
    assert isinstance(obj, ConfigMap | Secret | ServiceAccount)
    return (dataclasses.replace(obj, meta=ObjectMeta(obj.meta.name, labels=obj.meta.labels)),)


def test_round_trip_render_then_parse_gives_the_same_spec() -> None:
    recreate = mutate(DEPLOYMENT, "spec.strategy", {"type": "Recreate"})
    recreate = mutate(recreate, "metadata.name", "batch")
    service = mutate(SERVICE, "spec.ports", [
        {"name": "http", "port": 80, "targetPort": "http"},
        {"name": "admin", "port": 9000, "targetPort": 9001, "nodePort": 30900},
    ])  # fmt: skip
    config = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
         "data": {"mode": "prod"}, "binaryData": {"logo": "iVBORw=="}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
         "type": "kubernetes.io/basic-auth", "stringData": {"password": "s3cret"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
    ]  # fmt: skip
    original = parse_manifests([("in.yaml", dump(_rich_deployment(), recreate, service, *config))])
    stored = [
        dataclasses.replace(o, meta=dataclasses.replace(o.meta, uid="u1", resource_version=9,
                                                        created_at=T0))
        for o in original.objects
    ]  # fmt: skip
    assert isinstance(stored[0], Deployment)
    assert stored[0].template.spec.containers[0].env[0] == EnvVar("MODE", "prod")

    listed = {"apiVersion": "v1", "kind": "List", "items": [render_object(o, NOW) for o in stored]}
    text = yaml.safe_dump(listed).encode()
    again = parse_manifests([("get.yaml", text)])

    assert [_spec_of(o) for o in again.objects] == [_spec_of(o) for o in original.objects]
    assert again.warnings == ()
