"""spec.volumes and containers[].volumeMounts of a pod template -> the model's Volume/VolumeMount.

pinnace runs five volume types: `emptyDir` (a Docker volume that lives and dies
with the pod; `medium: Memory` is a tmpfs whose size is `sizeLimit`, default half
the node's memory as in Kubernetes — here 64 MiB unless set), `hostPath` (with
Kubernetes' `type` checks, done by the agent when it mounts),
`persistentVolumeClaim` (node-local storage, master/controllers/claims.py), and
`configMap` / `secret` (files of the object's keys, `items` and modes as
Kubernetes has them; master/app/podvolumes.py resolves them), and `projected` /
`downwardAPI` (files from several ConfigMaps, Secrets and fields of the pod, on the
same machinery; a serviceAccountToken projection is warned about and left out).
Other volume types are reported once in the object's warning line and left out,
together with the mounts that use them, so the user sees exactly what is not
there. A mount must name a declared volume, paths are absolute and a container
mounts each path once — as Kubernetes validates them.
"""

from __future__ import annotations

import posixpath
from typing import Any

from master.manifest.env import SUBSCRIPTED, resource_ref
from master.manifest.errors import Where, describe
from master.manifest.fields import as_int, as_list, as_map, as_str, check_fields, one_of, require
from master.manifest.names import check_dns1123_label, check_dns1123_subdomain
from master.manifest.quantities import QuantityError, parse_quantity_memory
from master.model import (
    DownwardFile,
    EnvVarSource,
    KeyToPath,
    ProjectedSource,
    Volume,
    VolumeMount,
)

# The pod fields a downwardAPI file may hold (Kubernetes' list for volumes).
DOWNWARD_FIELDS = (
    "metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
    "metadata.annotations",
)  # fmt: skip

SUPPORTED_SOURCES = (
    "emptyDir", "hostPath", "persistentVolumeClaim", "configMap", "secret", "projected",
    "downwardAPI",
)  # fmt: skip
# Kubernetes' other volume sources: named as not supported rather than unknown.
UNSUPPORTED_SOURCES = (
    "nfs", "iscsi", "glusterfs", "rbd",
    "cephfs", "cinder", "fc", "flocker", "flexVolume", "azureFile", "azureDisk",
    "vsphereVolume", "quobyte", "photonPersistentDisk", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo",
    "image",
)  # fmt: skip
HOST_PATH_TYPES = (
    "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
    "BlockDevice",
)  # fmt: skip
MEMORY_DEFAULT_BYTES = 64 * 1024 * 1024


def _source_of(data: dict[str, Any], where: Where) -> str | None:
    """The one volume source set; None (with a warning) when it is not one pinnace runs."""
    sources = [k for k in data if k != "name"]
    if len(sources) != 1:
        shown = ", ".join(sources) if sources else "none"
        raise where.error(f"must set exactly one volume source (emptyDir, ...), got {shown}")
    source = sources[0]
    if source in SUPPORTED_SOURCES:
        return source
    if source in UNSUPPORTED_SOURCES:
        where.key(source).warn("not supported yet, the volume and its mounts are left out")
        return None
    check_fields(data, where, ("name", *SUPPORTED_SOURCES), UNSUPPORTED_SOURCES)
    return None  # unreachable: check_fields refused the unknown key


def _empty_dir(value: Any, name: str, where: Where) -> Volume:
    data = as_map(value, where)
    check_fields(data, where, ("medium", "sizeLimit"))
    medium = ""
    if data.get("medium") is not None:
        medium = one_of(data["medium"], where.key("medium"), ("", "Memory"))
    size = 0
    if data.get("sizeLimit") is not None:
        try:
            size = parse_quantity_memory(data["sizeLimit"])
        except QuantityError as e:
            raise where.key("sizeLimit").error(str(e)) from None
    if medium == "Memory" and not size:
        size = MEMORY_DEFAULT_BYTES
    return Volume(name=name, source="emptyDir", medium=medium, size_limit_bytes=size)


def _host_path(value: Any, name: str, where: Where) -> Volume:
    data = as_map(value, where)
    check_fields(data, where, ("path", "type"))
    path = as_str(require(data, "path", where), where.key("path"))
    if not path.startswith("/"):
        raise where.key("path").error(f"must be an absolute path, got {describe(path)}")
    type_ = ""
    if data.get("type") is not None:
        type_ = one_of(data["type"], where.key("type"), HOST_PATH_TYPES)
    return Volume(name=name, source="hostPath", path=posixpath.normpath(path), host_path_type=type_)


def _claim(value: Any, name: str, where: Where) -> Volume:
    data = as_map(value, where)
    check_fields(data, where, ("claimName", "readOnly"))
    claim = as_str(require(data, "claimName", where), where.key("claimName"))
    check_dns1123_subdomain(claim, where.key("claimName"))
    read_only = data.get("readOnly", False)
    if not isinstance(read_only, bool):
        raise where.key("readOnly").error("must be true or false")
    return Volume(name=name, source="persistentVolumeClaim", claim_name=claim, read_only=read_only)


def _mode(value: Any, where: Where) -> int:
    """A file mode: an integer from 0 to 0777 (YAML's 0644 and 420 are the same)."""
    return as_int(value, where, 0, 0o777)


def _file_path(entry: dict[str, Any], at: Where, paths: set[str]) -> str:
    path = as_str(require(entry, "path", at), at.key("path"))
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise at.key("path").error(f"must be a relative path without '..', got {describe(path)}")
    if path in paths:
        raise at.key("path").error(f"{path} is used twice")
    paths.add(path)
    return path


def _items(value: Any, where: Where) -> tuple[KeyToPath, ...]:
    items: list[KeyToPath] = []
    paths: set[str] = set()
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        entry = as_map(item, at)
        check_fields(entry, at, ("key", "path", "mode"))
        key = as_str(require(entry, "key", at), at.key("key"))
        path = _file_path(entry, at, paths)
        mode = _mode(entry["mode"], at.key("mode")) if entry.get("mode") is not None else 0
        items.append(KeyToPath(key, path, mode))
    return tuple(items)


def _optional(data: dict[str, Any], where: Where) -> bool:
    optional = data.get("optional", False)
    if not isinstance(optional, bool):
        raise where.key("optional").error("must be true or false")
    return optional


def _default_mode(data: dict[str, Any], where: Where) -> int:
    if data.get("defaultMode") is None:
        return 0o644
    return _mode(data["defaultMode"], where.key("defaultMode"))


def _key_files(value: Any, name: str, where: Where, source: str, name_key: str) -> Volume:
    data = as_map(value, where)
    check_fields(data, where, (name_key, "items", "defaultMode", "optional"))
    obj = as_str(require(data, name_key, where), where.key(name_key))
    check_dns1123_subdomain(obj, where.key(name_key))
    items = _items(data.get("items"), where.key("items"))
    default_mode = _default_mode(data, where)
    optional = _optional(data, where)
    return Volume(
        name=name,
        source=source,
        object_name=obj,
        items=tuple(items),
        default_mode=default_mode,
        optional=optional,
        read_only=True,
    )


def _downward_files(value: Any, where: Where) -> tuple[DownwardFile, ...]:
    """downwardAPI items: each a path and a fieldRef (metadata.name, namespace, uid,
    labels, annotations, or one label/annotation) or a resourceFieldRef naming its
    container (a volume belongs to no container)."""
    files: list[DownwardFile] = []
    paths: set[str] = set()
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        entry = as_map(item, at)
        check_fields(entry, at, ("path", "fieldRef", "resourceFieldRef", "mode"))
        path = _file_path(entry, at, paths)
        mode = _mode(entry["mode"], at.key("mode")) if entry.get("mode") is not None else 0
        refs = [k for k in ("fieldRef", "resourceFieldRef") if entry.get(k) is not None]
        if len(refs) != 1:
            raise at.error("must set exactly one of fieldRef and resourceFieldRef")
        if refs[0] == "fieldRef":
            ref = as_map(entry["fieldRef"], at.key("fieldRef"))
            check_fields(ref, at.key("fieldRef"), ("fieldPath", "apiVersion"))
            field = as_str(require(ref, "fieldPath", at.key("fieldRef")), at.key("fieldRef"))
            if field not in DOWNWARD_FIELDS and not SUBSCRIPTED.match(field):
                raise (
                    at.key("fieldRef")
                    .key("fieldPath")
                    .error(
                        f"{describe(field)} is not supported in a volume; use one of "
                        f"{', '.join(DOWNWARD_FIELDS)}, metadata.labels['KEY'] or "
                        f"metadata.annotations['KEY']"
                    )
                )
            files.append(DownwardFile(path, EnvVarSource("fieldRef", field_path=field), mode))
            continue
        ref_at = at.key("resourceFieldRef")
        resource = resource_ref(as_map(entry["resourceFieldRef"], ref_at), ref_at)
        if not resource.container_name:
            raise (
                at.key("resourceFieldRef")
                .key("containerName")
                .error("is required in a volume (it belongs to no one container)")
            )
        files.append(DownwardFile(path, resource, mode))
    return tuple(files)


def _downward_api(value: Any, name: str, where: Where) -> Volume:
    data = as_map(value, where)
    check_fields(data, where, ("items", "defaultMode"))
    source = ProjectedSource(
        "downwardAPI", fields=_downward_files(data.get("items"), where.key("items"))
    )
    return Volume(
        name=name,
        source="downwardAPI",
        default_mode=_default_mode(data, where),
        read_only=True,
        sources=(source,),
    )


_PROJECTIONS = ("configMap", "secret", "downwardAPI", "serviceAccountToken", "clusterTrustBundle")


def _projection(data: dict[str, Any], at: Where) -> ProjectedSource | None:
    kinds = [k for k in data if data[k] is not None]
    check_fields(data, at, _PROJECTIONS)
    if len(kinds) != 1:
        raise at.error(f"must set exactly one of {', '.join(_PROJECTIONS)}")
    kind = kinds[0]
    where = at.key(kind)
    if kind in ("serviceAccountToken", "clusterTrustBundle"):
        where.warn(
            "not supported (pinnace issues no service account tokens or trust bundles); "
            "the projection is left out and the other sources are mounted"
        )
        return None
    source = as_map(data[kind], where)
    if kind == "downwardAPI":
        check_fields(source, where, ("items",))
        return ProjectedSource(
            kind, fields=_downward_files(source.get("items"), where.key("items"))
        )
    check_fields(source, where, ("name", "items", "optional"))
    obj = as_str(require(source, "name", where), where.key("name"))
    check_dns1123_subdomain(obj, where.key("name"))
    return ProjectedSource(
        kind,
        object_name=obj,
        items=_items(source.get("items"), where.key("items")),
        optional=_optional(source, where),
    )


def _projected(value: Any, name: str, where: Where) -> Volume:
    data = as_map(value, where)
    check_fields(data, where, ("sources", "defaultMode"))
    sources = []
    for i, item in enumerate(as_list(data.get("sources"), where.key("sources"))):
        at = where.key("sources").index(i)
        source = _projection(as_map(item, at), at)
        if source is not None:
            sources.append(source)
    return Volume(
        name=name,
        source="projected",
        default_mode=_default_mode(data, where),
        read_only=True,
        sources=tuple(sources),
    )


def _config_map(value: Any, name: str, where: Where) -> Volume:
    return _key_files(value, name, where, "configMap", "name")


def _secret(value: Any, name: str, where: Where) -> Volume:
    return _key_files(value, name, where, "secret", "secretName")


_PARSERS = {
    "emptyDir": _empty_dir,
    "hostPath": _host_path,
    "persistentVolumeClaim": _claim,
    "configMap": _config_map,
    "secret": _secret,
    "projected": _projected,
    "downwardAPI": _downward_api,
}


def parse_volumes(value: Any, where: Where) -> tuple[tuple[Volume, ...], frozenset[str]]:
    """The volumes pinnace runs, and the names of declared volumes it leaves out."""
    volumes: list[Volume] = []
    left_out: set[str] = set()
    seen: set[str] = set()
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        data = as_map(item, at)
        name = as_str(require(data, "name", at), at.key("name"))
        check_dns1123_label(name, at.key("name"))
        if name in seen:
            raise at.key("name").error(f"duplicate volume name {describe(name)}")
        seen.add(name)
        source = _source_of(data, at)
        if source is None:
            left_out.add(name)
            continue
        volumes.append(_PARSERS[source](data[source], name, at.key(source)))
    return tuple(volumes), frozenset(left_out)


def parse_volume_mounts(
    value: Any, where: Where, declared: frozenset[str], left_out: frozenset[str]
) -> tuple[VolumeMount, ...]:
    """A container's mounts; each must name a volume of the pod (mounts of left-out ones go)."""
    mounts: list[VolumeMount] = []
    paths: set[str] = set()
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        data = as_map(item, at)
        check_fields(
            data,
            at,
            ("name", "mountPath", "subPath", "readOnly"),
            ("mountPropagation", "subPathExpr", "recursiveReadOnly"),
        )
        name = as_str(require(data, "name", at), at.key("name"))
        path = as_str(require(data, "mountPath", at), at.key("mountPath"))
        if not path.startswith("/"):
            raise at.key("mountPath").error(f"must be an absolute path, got {describe(path)}")
        path = posixpath.normpath(path)
        if path in paths:
            raise at.key("mountPath").error(f"{path} is mounted twice in this container")
        paths.add(path)
        sub_path = ""
        if data.get("subPath") is not None:
            sub_path = as_str(data["subPath"], at.key("subPath"))
            if sub_path.startswith("/") or ".." in sub_path.split("/"):
                raise at.key("subPath").error(
                    f"must be a relative path inside the volume without '..', got "
                    f"{describe(sub_path)}"
                )
        read_only = data.get("readOnly", False)
        if not isinstance(read_only, bool):
            raise at.key("readOnly").error("must be true or false")
        if name in left_out:
            continue
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise at.key("name").error(
                f"no volume named {describe(name)} in spec.volumes (declared: {known})"
            )
        mounts.append(VolumeMount(name, path, sub_path, read_only))
    return tuple(mounts)
