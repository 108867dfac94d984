"""Protobuf request bodies (master/api/kube/protobuf.py): what kubectl's typed creates send,
read with Kubernetes' schema and written as Kubernetes' JSON."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.protobuf import message_factory

from kernel.clock import FakeClock
from master.api.kube.protobuf import MAGIC, ProtobufError, _schema, decode, message_name
from master.api.kube.resources import RESOURCES
from master.api.kube.writes import Writer, set_scale
from master.model import Container, Deployment, ObjectMeta, PodSpec, PodTemplate
from master.state import ClusterState
from master.store import MemoryStore

# Captured from `kubectl -v=9` (1.32 and 1.37 send the same bytes).
NAMESPACE = (
    b'k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1e\n\x16\n\x06team-c\x12\x00\x1a\x00"\x00*\x00'
    b'2\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00"\x00'
)
# kubectl create deployment web --image=nginx:latest --replicas=0 --port=80
DEPLOYMENT = bytes.fromhex(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412bf010a1f0a0377656212001a0022002a"
    "003200380042005a0a0a036170701203776562128d010800120c0a0a0a0361707012037765621a730a1c0a00"
    "12001a0022002a003200380042005a0a0a036170701203776562125312350a056e67696e78120c6e67696e78"
    "3a6c61746573742a00320a0a001000185022002a0042006a007200800100880100900100a201001a00320042"
    "004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038"
    "001a002200"
)
# kubectl create service clusterip web --tcp=8080:80
SERVICE = bytes.fromhex(
    "6b3873000a0d0a02763112075365727669636512690a1f0a0377656212001a0022002a003200380042005a0a"
    "0a03617070120377656212420a1b0a07383038302d3830120354435018903f2206080010501a002800120a0a"
    "0361707012037765621a002209436c757374657249503a00420052005a00600068001a020a001a002200"
)
# kubectl create secret generic s1 --from-literal=a=b
SECRET = bytes.fromhex(
    "6b3873000a0c0a0276311206536563726574121e0a120a02733112001a0022002a0032003800420012060a01"
    "611201621a001a002200"
)


def test_kubectls_creates_read_as_kubernetes_writes_them_in_json() -> None:
    assert decode(NAMESPACE) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-c"},
    }
    # replicas is a Go pointer: its 0 is the user's; every other zero is "not set".
    assert decode(DEPLOYMENT) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:latest", "ports": [{"containerPort": 80}]}
                    ]
                },
            },
        },
    }
    assert decode(SERVICE)["spec"] == {
        "ports": [{"name": "8080-80", "protocol": "TCP", "port": 8080, "targetPort": 80}],
        "selector": {"app": "web"},
        "type": "ClusterIP",
    }
    assert decode(SECRET)["data"] == {"a": "Yg=="}  # bytes as base64, as Go writes []byte


def _message(full_name: str, **fields: Any) -> Any:
    cls = message_factory.GetMessageClass(_schema().pool.FindMessageTypeByName(full_name))
    return cls(**fields)


def _body(api_version: str, kind: str, obj: Any) -> bytes:
    unknown = _message(
        "k8s.io.apimachinery.pkg.runtime.Unknown",
        typeMeta={"apiVersion": api_version, "kind": kind},
        raw=obj.SerializeToString(),
    )
    return MAGIC + bytes(unknown.SerializeToString())


def test_kubernetes_json_forms_inlined_structs_and_pointer_zeros() -> None:
    pod_spec = {
        "containers": [
            {
                "name": "web",
                "resources": {"limits": {"cpu": {"string": "500m"}}},
                "env": [
                    {
                        "name": "A",
                        "valueFrom": {
                            "configMapKeyRef": {
                                "localObjectReference": {"name": "cfg"},
                                "key": "a",
                                "optional": False,
                            }
                        },
                    }
                ],
                "readinessProbe": {
                    "handler": {"httpGet": {"port": {"type": 1, "strVal": "http"}}},
                    "periodSeconds": 0,
                },
            }
        ],
        "volumes": [{"name": "scratch", "volumeSource": {"emptyDir": {}}}],
        "terminationGracePeriodSeconds": 0,
        "hostNetwork": False,
    }
    deployment = _message(
        "k8s.io.api.apps.v1.Deployment",
        metadata={"name": "web", "creationTimestamp": {}, "deletionTimestamp": {"seconds": 86400}},
        spec={"template": {"spec": pod_spec}},
    )
    got = decode(_body("apps/v1", "Deployment", deployment))
    # Time as RFC 3339; Go's zero time is null, so left out.
    assert got["metadata"] == {"name": "web", "deletionTimestamp": "1970-01-02T00:00:00Z"}
    spec = got["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["resources"] == {"limits": {"cpu": "500m"}}  # Quantity: its string
    # LocalObjectReference and ProbeHandler are embedded Go structs: JSON inlines them;
    # optional (*bool) keeps its false, periodSeconds (int32) drops its 0.
    assert container["env"][0]["valueFrom"] == {
        "configMapKeyRef": {"name": "cfg", "key": "a", "optional": False}
    }
    assert container["readinessProbe"] == {"httpGet": {"port": "http"}}  # IntOrString
    assert spec["volumes"] == [{"name": "scratch", "emptyDir": {}}]  # *EmptyDir: {} kept
    assert spec["terminationGracePeriodSeconds"] == 0 and "hostNetwork" not in spec


def test_bodies_pinnace_cannot_read_are_refused_by_name() -> None:
    assert message_name("networking.k8s.io/v1", "Ingress") == "k8s.io.api.networking.v1.Ingress"
    assert message_name("v1", "Pod") == "k8s.io.api.core.v1.Pod"
    with pytest.raises(ProtobufError, match="envelope"):
        decode(b"{}")
    with pytest.raises(ProtobufError, match=r"k8s\.io\.api\.batch\.v1\.Job"):
        decode(_body("batch/v1", "Job", _message("k8s.io.api.core.v1.Pod")))
    with pytest.raises(ProtobufError, match="does not decode"):
        decode(DEPLOYMENT[:60])


def test_every_kind_of_every_group_pinnace_serves_has_its_protobuf_schema() -> None:
    # Discovery lists these groups; a typed client may send any of their kinds as protobuf
    # (autoscaling/v1 Scale: client-go's UpdateScale on deployments/scale).
    served = {(r.group, r.kind) for r in RESOURCES if not r.kind.endswith("Options")}
    missing = [
        (group, kind) for group, kind in sorted(served) if _kind_message(group or "", kind) is None
    ]
    assert missing == []


def _kind_message(group: str, kind: str) -> Any:
    api_version = (
        "autoscaling/v1" if kind == "Scale" else "policy/v1" if kind == "Eviction"
        else f"{group}/v1" if group else "v1"
    )  # fmt: skip
    try:
        return _schema().pool.FindMessageTypeByName(message_name(api_version, kind))
    except KeyError:
        return None


def test_a_typed_clients_scale_to_zero_reads_as_a_scale_without_replicas() -> None:
    scale = _message(
        "k8s.io.api.autoscaling.v1.Scale",
        metadata={"name": "web", "namespace": "default", "resourceVersion": "7"},
        spec={"replicas": 0},
    )

    # Go's ScaleSpec.Replicas is no pointer: 0 is "not set" in JSON, as Kubernetes writes it.
    assert decode(_body("autoscaling/v1", "Scale", scale)) == {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
    }  # (an empty spec is left out whole; set_scale reads that PUT as 0 replicas)
    three = _message("k8s.io.api.autoscaling.v1.Scale", spec={"replicas": 3})
    assert decode(_body("autoscaling/v1", "Scale", three))["spec"] == {"replicas": 3}


def test_a_protobuf_scale_put_scales_the_deployment_to_zero_or_more() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    container = Container(name="web", image="nginx:latest")
    state.put(Deployment(meta=ObjectMeta(name="web"), replicas=3, selector={"app": "web"},
                         template=PodTemplate(labels={"app": "web"},
                                              spec=PodSpec(containers=(container,)))))  # fmt: skip
    proto = "application/vnd.kubernetes.protobuf"

    def put(replicas: int) -> Any:
        body = _body("autoscaling/v1", "Scale", _message(
            "k8s.io.api.autoscaling.v1.Scale", metadata={"name": "web"},
            spec={"replicas": replicas},
        ))  # fmt: skip
        return asyncio.run(set_scale(state, "web", body, proto, "PUT", 0.0, w=Writer("client")))

    assert put(2)["spec"]["replicas"] == 2
    assert put(0)["spec"]["replicas"] == 0
    dep = state.get("Deployment", "web")
    assert isinstance(dep, Deployment) and dep.replicas == 0
