"""`pinnace describe`: kubectl's layout from `-o json` objects, secrets never shown."""

from __future__ import annotations

import base64
import json
from typing import Any

from master.cli.describe import related_pods
from master.cli.describe_render import (
    LAST_APPLIED,
    Related,
    describe_deployment,
    describe_node,
    describe_pod,
    describe_pvc,
    describe_secret,
    describe_service,
    events_for,
    qos_class,
    tabwrite,
)

NOW = 1_700_000_600.0
T0 = "2023-11-14T22:13:20Z"  # NOW - 600 s


def test_the_tab_writer_aligns_each_run_of_lines_that_share_a_column() -> None:
    text = "Name:\tweb\nNamespace:\tdefault\nContainers:\n  c:\n    Image:\tnginx\n    ID:\tx"
    assert tabwrite(text).splitlines() == [
        "Name:       web",
        "Namespace:  default",
        "Containers:",
        "  c:",
        "    Image:  nginx",
        "    ID:     x",
    ]
    # Nested columns: the second column is aligned only where lines have a third cell.
    assert tabwrite("a\tbb\tc\naaa\tb\tc\nx\ty").splitlines() == [
        "a    bb  c",
        "aaa  b   c",
        "x    y",
    ]


def _pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-1", "namespace": "default", "creationTimestamp": T0,
            "labels": {"b": "2", "a": "1"},
            "annotations": {LAST_APPLIED: '{"stringData":{"password":"hunter2"}}', "note": "x"},
            "ownerReferences": [{"kind": "StatefulSet", "name": "web", "controller": True}],
        },
        "spec": {
            "nodeName": "n1",
            "containers": [{
                "name": "c", "image": "nginx",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [
                    {"name": "PLAIN", "value": "v"},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                ],
                "resources": {"requests": {"cpu": "250m"}},
                "livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}}],
        },
        "status": {
            "phase": "Running", "hostIP": "10.0.0.5", "podIP": "10.0.0.5", "startTime": T0,
            "portMap": {"80/TCP": 32768},
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": "c", "ready": True, "restartCount": 2, "containerID": "docker://abc",
                "state": {"running": {"startedAt": T0}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "Error",
                                             "startedAt": T0, "finishedAt": T0}},
            }],
            **status,
        },
    }  # fmt: skip


def _event(reason: str, last: str, count: int = 1, kind: str = "Pod") -> dict[str, Any]:
    return {
        "involvedObject": {"kind": kind, "name": "web-1"}, "reason": reason, "type": "Normal",
        "message": f"{reason}  happened", "count": count, "firstTimestamp": T0,
        "lastTimestamp": last, "source": {"component": "master"},
    }  # fmt: skip


def test_a_pod_reads_as_kubectl_describe_prints_it_with_its_events_last() -> None:
    events = [
        _event("Started", "2023-11-14T22:20:00Z", count=3),
        _event("Scheduled", T0),
        _event("Other", T0, kind="Node"),
    ]
    text = describe_pod(_pod(), Related(events=events_for(events, "Pod", "web-1")), NOW)
    lines = text.splitlines()
    assert lines[:3] == [
        "Name:         web-1",
        "Namespace:    default",
        "Node:         n1/10.0.0.5",
    ]
    assert "Start Time:   Tue, 14 Nov 2023 22:13:20 +0000" in lines
    assert lines[lines.index("Labels:       a=1") + 1] == "              b=2"
    assert "Annotations:  note: x" in lines
    assert "Controlled By:  StatefulSet/web" in lines
    assert "    Host Port:      32768/TCP" in lines
    assert "    State:          Running" in lines
    assert "    Last State:     Terminated" in lines
    assert "      Exit Code:    137" in lines
    assert "    Restart Count:  2" in lines
    assert "    Liveness:  tcp-socket :80 delay=0s timeout=1s period=5s #success=1 #failure=3" in (
        lines
    )
    assert "      PW:     <set to the key 'pw' in secret 's'>  Optional: false" in lines
    assert "      /data from data (ro)" in lines
    assert "QoS Class:       Burstable" in lines
    # Oldest first; repeats counted; the Node's event left out.
    assert lines[-5:] == [
        "Events:",
        "  Type    Reason     Age                  From    Message",
        "  ----    ------     ----                 ----    -------",
        "  Normal  Scheduled  10m                  master  Scheduled happened",
        "  Normal  Started    3m20s (x3 over 10m)  master  Started happened",
    ]
    assert "hunter2" not in text and LAST_APPLIED not in text


def test_a_pod_without_events_or_node_says_none() -> None:
    pending = _pod()
    pending["spec"]["nodeName"] = ""
    text = describe_pod(pending, Related(), NOW)
    assert "Node:         <none>" in text.splitlines()
    assert text.splitlines()[-1] == "Events:          <none>"


def test_secrets_show_sizes_never_values() -> None:
    secret = {
        "metadata": {"name": "s", "annotations": {LAST_APPLIED: '{"stringData":{"pw":"hunter2"}}'}},
        "type": "Opaque",
        "data": {"pw": base64.b64encode(b"hunter2").decode(), "token": "bm9wZQ=="},
    }
    text = describe_secret(secret, Related(), NOW)
    assert "pw:     7 bytes" in text and "token:  4 bytes" in text
    assert "hunter2" not in text and "aHVudGVyMg" not in text and "nope" not in text


def test_qos_classes() -> None:
    assert qos_class([{"name": "c"}]) == "BestEffort"
    same = {"cpu": "1", "memory": "1Gi"}
    assert qos_class([{"resources": {"limits": same}}]) == "Guaranteed"
    assert qos_class([{"resources": {"limits": same, "requests": same}}]) == "Guaranteed"
    assert qos_class([{"resources": {"limits": same, "requests": {"cpu": "500m"}}}]) == "Burstable"


def _dep() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "creationTimestamp": T0},
        "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
        "status": {
            "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True",
                            "reason": "MinimumReplicasAvailable"}],
            "revisions": [{"revision": 1, "templateHash": "old"},
                          {"revision": 2, "templateHash": "new"}],
        },
    }  # fmt: skip


def _labelled(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "spec": {}, "status": {}}


def test_a_deployment_shows_its_revisions_as_replica_sets_with_their_pods() -> None:
    pods = [
        _labelled("a", app="web", **{"pod-template-hash": "new"}),
        _labelled("b", app="web", **{"pod-template-hash": "new"}),
        _labelled("c", app="web", **{"pod-template-hash": "old"}),
        _labelled("other", app="db", **{"pod-template-hash": "new"}),
    ]
    dep = _dep()
    text = describe_deployment(dep, Related(pods=related_pods("Deployment", dep, pods)), NOW)
    lines = text.splitlines()
    assert (
        "Replicas:               2 desired | 2 updated | 3 total | 2 available | 1 unavailable"
        in (lines)
    )
    assert "   c:" in lines and "    Image:         nginx" in lines
    assert "OldReplicaSets:  web-old (1/0 replicas created)" in lines
    assert "NewReplicaSet:   web-new (2/2 replicas created)" in lines
    assert "  Available      True    MinimumReplicasAvailable" in lines


def test_a_service_lists_its_endpoints_and_a_node_its_pods_and_their_share() -> None:
    svc = {
        "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP", "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }  # fmt: skip
    ep = {"subsets": [{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 32768}]}]}
    lines = describe_service(svc, Related(endpoints=ep), NOW).splitlines()
    assert "Endpoints:         10.0.0.5:32768" in lines
    assert "TargetPort:        8080/TCP" in lines

    node = {
        "metadata": {"name": "n1", "creationTimestamp": T0},
        "spec": {},
        "status": {"allocatable": {"cpu": "2", "memory": "1Gi"}},
    }
    pod = _pod()
    done = _pod(phase="Succeeded")
    text = describe_node(node, Related(pods=related_pods("Node", node, [pod, done])), NOW)
    assert "(1 in total)" in text
    assert "250m (12%)" in text


def test_a_claim_names_the_pods_that_use_it() -> None:
    pvc = {
        "metadata": {"name": "data-web-1"},
        "spec": {"storageClassName": "local", "volumeName": "pvc-1"},
        "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                   "capacity": {"storage": "1Gi"}},
    }  # fmt: skip
    lines = describe_pvc(pvc, Related(pods=[_pod(), _labelled("x")]), NOW).splitlines()
    assert "Used By:       web-1" in lines
    assert "Access Modes:  RWO" in lines
    json.dumps(pvc)


def test_endpoint_slices_carry_each_subset_for_kubectl_describe_service() -> None:
    from master.api.kube.objects import endpoint_slices

    endpoints = {
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [
            {"addresses": [{"ip": "10.0.0.5", "targetRef": {"kind": "Pod", "name": "a"}}],
             "ports": [{"port": 32768, "protocol": "TCP"}]},
            {"notReadyAddresses": [{"ip": "10.0.0.6"}], "ports": [{"port": 32769}]},
        ],
    }  # fmt: skip
    first, second = endpoint_slices(endpoints)
    assert first["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
    assert first["endpoints"] == [
        {"addresses": ["10.0.0.5"], "conditions": {"ready": True},
         "targetRef": {"kind": "Pod", "name": "a"}}
    ]  # fmt: skip
    assert first["ports"] == [{"name": "", "port": 32768, "protocol": "TCP"}]
    assert second["endpoints"][0]["conditions"] == {"ready": False}
    assert {first["metadata"]["name"], second["metadata"]["name"]} == {"web-0", "web-1"}
