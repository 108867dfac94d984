"""configMap and secret volumes resolved into files for the node that runs the pod (pure).

As with the environment (master/app/podenv.py), the master resolves each time it
sends a node its assignment set: the files travel over that node's mTLS session
only, the agent keeps them on a tmpfs and rewrites them when the object changes
(the kubelet's "updated in place within seconds"). Kubernetes' rules: every key
becomes a file named after it unless `items` picks keys and paths; a file's mode
is its item's `mode`, else `defaultMode` (0644); a missing object, or a missing
key named in `items`, holds the pod's containers back with the kubelet's sentence
unless the volume is `optional` (then the volume is empty, or the key left out).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass

from master.app.podenv import field_value, resource_value
from master.model import (
    ConfigMap,
    Container,
    DownwardFile,
    Node,
    PersistentVolumeClaim,
    Pod,
    Secret,
    StoredObject,
    Volume,
)

Lookup = Callable[[str, str], StoredObject | None]
KEY_SOURCES = ("configMap", "secret")
FILE_SOURCES = (*KEY_SOURCES, "projected", "downwardAPI")


@dataclass(frozen=True, slots=True)
class VolumeFile:
    path: str
    content: bytes
    mode: int


@dataclass(frozen=True, slots=True)
class ResolvedFiles:
    files: tuple[VolumeFile, ...] = ()
    # Why the volume cannot be made yet ("" when it can).
    error: str = ""
    # A persistentVolumeClaim volume: its claim's requested bytes now (a resize reaches
    # the node with the next assignment set; 0 when the claim is gone).
    claim_bytes: int = 0


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _data(volume: Volume, lookup: Lookup) -> dict[str, bytes] | None:
    if volume.source == "configMap":
        cm = lookup("ConfigMap", volume.object_name)
        if not isinstance(cm, ConfigMap):
            return None
        return {
            **{k: v.encode() for k, v in cm.data.items()},
            **{k: _b64(v) for k, v in cm.binary_data.items()},
        }
    secret = lookup("Secret", volume.object_name)
    if not isinstance(secret, Secret):
        return None
    return {k: _b64(v) for k, v in secret.data.items()}


def _downward(pod: Pod | None, f: DownwardFile, node: Node | None) -> bytes:
    """A downwardAPI file's content: one field, all labels/annotations as `key="value"`
    lines (the kubelet's format), or a container's resource."""
    if pod is None:
        return b""
    if f.ref.kind == "resourceFieldRef":
        container = next((c for c in pod.spec.containers if c.name == f.ref.container_name), None)
        return resource_value(pod, container, f.ref, node).encode() if container else b""
    if f.ref.field_path in ("metadata.labels", "metadata.annotations"):
        pairs = pod.meta.labels if f.ref.field_path == "metadata.labels" else pod.meta.annotations
        return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(pairs.items())).encode()
    return field_value(pod, f.ref.field_path, node).encode()


def _projected(volume: Volume, lookup: Lookup, pod: Pod | None, node: Node | None) -> ResolvedFiles:
    """Every source's files in order (a later file of the same path wins); a missing
    object or key holds the pod back as for a configMap or secret volume."""
    files: dict[str, VolumeFile] = {}
    for s in volume.sources:
        if s.source in KEY_SOURCES:
            one = Volume(
                volume.name,
                s.source,
                object_name=s.object_name,
                items=s.items,
                default_mode=volume.default_mode,
                optional=s.optional,
            )
            got = resolve_volume_files(one, lookup)
            if got.error:
                return got
            files.update((f.path, f) for f in got.files)
            continue
        for d in s.fields:
            files[d.path] = VolumeFile(
                d.path, _downward(pod, d, node), d.mode or volume.default_mode
            )
    return ResolvedFiles(tuple(files.values()))


def resolve_volume_files(
    volume: Volume, lookup: Lookup, pod: Pod | None = None, node: Node | None = None
) -> ResolvedFiles:
    if volume.source == "persistentVolumeClaim":
        claim = lookup("PersistentVolumeClaim", volume.claim_name)
        return ResolvedFiles(
            claim_bytes=claim.storage_bytes if isinstance(claim, PersistentVolumeClaim) else 0
        )
    if volume.source in ("projected", "downwardAPI"):
        return _projected(volume, lookup, pod, node)
    if volume.source not in KEY_SOURCES:
        return ResolvedFiles()
    data = _data(volume, lookup)
    what = "configmap" if volume.source == "configMap" else "secret"
    if data is None:
        if volume.optional:
            return ResolvedFiles()
        return ResolvedFiles(error=f'{what} "{volume.object_name}" not found')
    if not volume.items:
        return ResolvedFiles(
            tuple(VolumeFile(k, data[k], volume.default_mode) for k in sorted(data))
        )
    files = []
    for item in volume.items:
        if item.key not in data:
            if volume.optional:
                continue
            return ResolvedFiles(
                error=f"{what} {volume.object_name} has no key {item.key} "
                f"(volume {volume.name}, items)"
            )
        files.append(VolumeFile(item.path, data[item.key], item.mode or volume.default_mode))
    return ResolvedFiles(tuple(files))


def mount_error(pod: Pod, container: Container, lookup: Lookup) -> str:
    """Why a container cannot start because a volume it mounts cannot be made, or ""."""
    volumes = {v.name: v for v in pod.spec.volumes}
    for mount in container.volume_mounts:
        volume = volumes.get(mount.name)
        if volume is not None and volume.source in FILE_SOURCES:
            error = resolve_volume_files(volume, lookup, pod).error
            if error:
                return f"MountVolume.SetUp failed for volume {volume.name}: {error}"
    return ""


def volume_references(pod: Pod) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the pod's volumes read."""
    refs = {
        (source, name)
        for v in pod.spec.volumes
        for source, name in [(v.source, v.object_name)]
        + [(s.source, s.object_name) for s in v.sources]
        if source in KEY_SOURCES
    }
    return {("ConfigMap" if s == "configMap" else "Secret", name) for s, name in refs}
