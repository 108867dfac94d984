"""Storage in Kubernetes' shape: pod volumes and mounts, PersistentVolumeClaims and
PersistentVolumes, as `-o yaml` and the tables (`get pvc`, `get pv`) read them."""

from __future__ import annotations

from typing import Any

from master.api.storage_notes import CAPACITY_BYTES, DEFAULT_STORAGE_CLASS, USED_BYTES
from master.controllers.claims import RECLAIM_POLICIES, reclaim_policy
from master.manifest.quantities import format_memory
from master.model import (
    DownwardFile,
    KeyToPath,
    PersistentVolume,
    PersistentVolumeClaim,
    Volume,
    VolumeMount,
)

Obj = dict[str, Any]


def _items(items: tuple[KeyToPath, ...]) -> list[Obj]:
    return [{"key": i.key, "path": i.path, **({"mode": i.mode} if i.mode else {})} for i in items]


def _downward_items(files: tuple[DownwardFile, ...]) -> list[Obj]:
    out = []
    for f in files:
        item: Obj = {"path": f.path}
        if f.ref.kind == "fieldRef":
            item["fieldRef"] = {"apiVersion": "v1", "fieldPath": f.ref.field_path}
        else:
            ref: Obj = {"containerName": f.ref.container_name, "resource": f.ref.resource}
            if f.ref.divisor:
                ref["divisor"] = f.ref.divisor
            item["resourceFieldRef"] = ref
        if f.mode:
            item["mode"] = f.mode
        out.append(item)
    return out


def _projection(v: Volume) -> Obj:
    if v.source == "downwardAPI":
        fields = v.sources[0].fields if v.sources else ()
        return {"items": _downward_items(fields), "defaultMode": v.default_mode}
    sources: list[Obj] = []
    for s in v.sources:
        if s.source == "downwardAPI":
            sources.append({"downwardAPI": {"items": _downward_items(s.fields)}})
            continue
        one: Obj = {"name": s.object_name}
        if s.items:
            one["items"] = _items(s.items)
        if s.optional:
            one["optional"] = True
        sources.append({s.source: one})
    return {"sources": sources, "defaultMode": v.default_mode}


def render_volume(v: Volume) -> Obj:
    if v.source == "emptyDir":
        source: Obj = {}
        if v.medium:
            source["medium"] = v.medium
        if v.size_limit_bytes:
            source["sizeLimit"] = format_memory(v.size_limit_bytes)
        return {"name": v.name, "emptyDir": source}
    if v.source == "hostPath":
        host: Obj = {"path": v.path}
        if v.host_path_type:
            host["type"] = v.host_path_type
        return {"name": v.name, "hostPath": host}
    if v.source in ("configMap", "secret"):
        files: Obj = {"name" if v.source == "configMap" else "secretName": v.object_name}
        if v.items:
            files["items"] = [
                {"key": i.key, "path": i.path, **({"mode": i.mode} if i.mode else {})}
                for i in v.items
            ]
        files["defaultMode"] = v.default_mode
        if v.optional:
            files["optional"] = True
        return {"name": v.name, v.source: files}
    if v.source in ("projected", "downwardAPI"):
        return {"name": v.name, v.source: _projection(v)}
    claim: Obj = {"claimName": v.claim_name}
    if v.read_only:
        claim["readOnly"] = True
    return {"name": v.name, "persistentVolumeClaim": claim}


def render_volume_mount(m: VolumeMount) -> Obj:
    out: Obj = {"name": m.name, "mountPath": m.mount_path}
    if m.sub_path:
        out["subPath"] = m.sub_path
    if m.read_only:
        out["readOnly"] = True
    return out


def render_claim(claim: PersistentVolumeClaim, meta: Obj) -> Obj:
    status: Obj = {"phase": claim.phase}
    spec: Obj = {
        "accessModes": list(claim.access_modes),
        "resources": {"requests": {"storage": format_memory(claim.storage_bytes)}},
        "storageClassName": claim.storage_class,
        "volumeMode": claim.volume_mode,
    }
    if claim.volume_name:
        spec["volumeName"] = claim.volume_name
        status["accessModes"] = list(claim.access_modes)
        status["capacity"] = {"storage": format_memory(claim.storage_bytes)}
    annotations = dict(meta.get("annotations") or {})
    if claim.node_name:
        # Kubernetes' annotation for the node a WaitForFirstConsumer claim was bound on.
        annotations["volume.kubernetes.io/selected-node"] = claim.node_name
    # As the node last measured it (Kubernetes has no field for it; kubelet's volume
    # stats are metrics): bytes used, and the filesystem's size when it is enforced.
    if claim.used_bytes >= 0:
        annotations[USED_BYTES] = str(claim.used_bytes)
    if claim.capacity_bytes:
        annotations[CAPACITY_BYTES] = str(claim.capacity_bytes)
        if claim.capacity_bytes < claim.storage_bytes and claim.volume_name:
            status["conditions"] = [
                {
                    "type": "FileSystemResizePending",
                    "status": "True",
                    "message": "the node grows the filesystem when no pod holds it "
                    "(or at once where it can grow online)",
                }
            ]
    if annotations:
        meta = {**meta, "annotations": annotations}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": spec,
        "status": status,
    }


def render_volume_object(pv: PersistentVolume, meta: Obj) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": meta,
        "spec": {
            "capacity": {"storage": format_memory(pv.storage_bytes)},
            "accessModes": list(pv.access_modes),
            "persistentVolumeReclaimPolicy": pv.reclaim_policy,
            "storageClassName": pv.storage_class,
            "claimRef": {
                "kind": "PersistentVolumeClaim",
                "name": pv.claim_name,
                "namespace": pv.claim_namespace,
                "uid": pv.claim_uid,
            },
            "local": {"path": f"docker volume pinnace-{pv.meta.name}"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [pv.node_name],
                                }
                            ]
                        }
                    ]
                }
            },
        },
        "status": {"phase": pv.phase},
    }


PROVISIONER = "pinnace.io/local"


def render_storage_classes(created: str | None) -> list[Obj]:
    """The built-in StorageClasses (not stored; `created` is when this master started):
    `local`, the default, and `local-retain`: node-local volumes of the claim's size,
    bound when the first pod is scheduled, that may grow."""
    return [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": name,
                "uid": f"pinnace-storageclass-{name}",
                "resourceVersion": "1",
                "creationTimestamp": created,
                "labels": {},
                "annotations": {DEFAULT_STORAGE_CLASS: "true"} if name == "local" else {},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": reclaim_policy(name),
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": True,
        }
        for name in sorted(RECLAIM_POLICIES)
    ]
