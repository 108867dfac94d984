"""projected and downwardAPI volumes: parsed from a manifest, resolved into files (pure).

They ride on the configMap/secret machinery: the master resolves the files for the
pod's node, the agent writes them on its tmpfs and rewrites them when an object
changes. serviceAccountToken projections are warned about and left out.
"""

from __future__ import annotations

import base64
from typing import Any

from master.app.podvolumes import mount_error, resolve_volume_files, volume_references
from master.model import (
    ConfigMap,
    Container,
    Deployment,
    ObjectMeta,
    Pod,
    PodSpec,
    Resources,
    Secret,
    StoredObject,
    Volume,
    VolumeMount,
)
from tests.unit.test_manifest_support import DEPLOYMENT, error, mutate, parse

PROJECTED = {
    "name": "all",
    "projected": {
        "defaultMode": 0o440,
        "sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "conf/a"}]}},
            {"secret": {"name": "sec"}},
            {
                "downwardAPI": {
                    "items": [
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {
                            "path": "mem",
                            "resourceFieldRef": {
                                "containerName": "web",
                                "resource": "limits.memory",
                                "divisor": "1Mi",
                            },
                            "mode": 0o400,
                        },
                    ]
                }
            },
            {"serviceAccountToken": {"path": "token"}},
        ],
    },
}


def _with_volume(volume: dict[str, Any]) -> dict[str, Any]:
    doc = mutate(DEPLOYMENT, "spec.template.spec.volumes", [volume])
    mount = [{"name": volume["name"], "mountPath": "/etc/all"}]
    return mutate(doc, "spec.template.spec.containers[0].volumeMounts", mount)


def _volume(doc: dict[str, Any]) -> tuple[Volume, tuple[str, ...]]:
    parsed = parse(doc)
    dep = parsed.objects[0]
    assert isinstance(dep, Deployment)
    (volume,) = dep.template.spec.volumes
    return volume, parsed.warnings


def test_a_projected_volume_keeps_its_sources_and_warns_about_a_token() -> None:
    volume, warnings = _volume(_with_volume(PROJECTED))

    assert volume.source == "projected" and volume.read_only
    assert [s.source for s in volume.sources] == ["configMap", "secret", "downwardAPI"]
    assert volume.default_mode == 0o440
    assert any("serviceAccountToken: not supported" in w for w in warnings), warnings


def test_a_downward_api_volume_and_its_refusals() -> None:
    volume, _ = _volume(
        _with_volume(
            {
                "name": "info",
                "downwardAPI": {
                    "items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                },
            }
        )
    )
    assert volume.source == "downwardAPI" and volume.sources[0].fields[0].path == "ns"

    bad_field = {
        "name": "info",
        "downwardAPI": {"items": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]},
    }
    assert "is not supported in a volume" in error(_with_volume(bad_field))
    no_container = {
        "name": "info",
        "downwardAPI": {"items": [{"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}}]},
    }
    assert "containerName: is required in a volume" in error(_with_volume(no_container))
    outside = {
        "name": "info",
        "downwardAPI": {"items": [{"path": "../x", "fieldRef": {"fieldPath": "metadata.name"}}]},
    }
    assert "must be a relative path without '..'" in error(_with_volume(outside))


OBJECTS: dict[tuple[str, str], StoredObject] = {
    ("ConfigMap", "cfg"): ConfigMap(ObjectMeta("cfg"), {"a": "A", "b": "B"}),
    ("Secret", "sec"): Secret(ObjectMeta("sec"), data={"pw": base64.b64encode(b"pw1").decode()}),
}


def _pod(volume: Volume) -> Pod:
    web = Container(
        "web",
        "nginx",
        limits=Resources(memory_bytes=64 << 20),
        volume_mounts=(VolumeMount(volume.name, "/etc/all"),),
    )
    meta = ObjectMeta("web-1", labels={"app": "web", "tier": 'fr"ont'})
    return Pod(meta, PodSpec((web,), volumes=(volume,)))


def test_projected_files_come_from_every_source_with_their_modes() -> None:
    volume, _ = _volume(_with_volume(PROJECTED))
    pod = _pod(volume)

    files = resolve_volume_files(volume, lambda k, n: OBJECTS.get((k, n)), pod).files

    assert {f.path: (f.content, f.mode) for f in files} == {
        "conf/a": (b"A", 0o440),
        "pw": (b"pw1", 0o440),
        "name": (b"web-1", 0o440),
        "labels": (b'app="web"\ntier="fr\\"ont"', 0o440),
        "mem": (b"64", 0o400),
    }
    assert volume_references(pod) == {("ConfigMap", "cfg"), ("Secret", "sec")}


def test_a_missing_object_of_a_projection_holds_the_container_back() -> None:
    volume, _ = _volume(_with_volume(PROJECTED))
    pod = _pod(volume)
    only_cfg = {("ConfigMap", "cfg"): OBJECTS[("ConfigMap", "cfg")]}

    error_text = mount_error(pod, pod.spec.containers[0], lambda k, n: only_cfg.get((k, n)))

    assert error_text == 'MountVolume.SetUp failed for volume all: secret "sec" not found'
