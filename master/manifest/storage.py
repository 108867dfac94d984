"""PersistentVolumeClaim manifests (v1) -> the model's PersistentVolumeClaim.

pinnace's storage class `local` (node-local volumes of the claim's size, bound
when the first pod is scheduled, as Kubernetes' WaitForFirstConsumer; reclaim
policy Delete; allowVolumeExpansion) is the default: a claim that names no class
gets it. `local-retain` is the same with reclaim policy Retain. Local storage is reachable from one
node only, so the access modes it can honour are ReadWriteOnce and
ReadWriteOncePod; a claim asking for ReadWriteMany or ReadOnlyMany is refused
with that reason rather than bound to storage that would not be shared.
"""

from __future__ import annotations

from typing import Any

from master.manifest.errors import Where, describe
from master.manifest.fields import as_list, as_map, as_str, check_fields, one_of, require
from master.manifest.meta import parse_object_meta
from master.manifest.names import check_dns1123_subdomain
from master.manifest.quantities import QuantityError, parse_quantity_memory
from master.model import PersistentVolumeClaim

STORAGE_CLASS = "local"
# The same node-local volumes, kept on their node when their claim is deleted
# (reclaim policy Retain; `local` deletes them).
STORAGE_CLASSES = (STORAGE_CLASS, "local-retain")
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteOncePod", "ReadOnlyMany", "ReadWriteMany")
LOCAL_MODES = ("ReadWriteOnce", "ReadWriteOncePod")


def _access_modes(value: Any, where: Where) -> tuple[str, ...]:
    items = as_list(value, where)
    if not items:
        raise where.error("is required (e.g. [ReadWriteOnce])")
    modes: list[str] = []
    for i, item in enumerate(items):
        mode = one_of(item, where.index(i), ACCESS_MODES)
        if mode not in LOCAL_MODES:
            raise where.index(i).error(
                f"{mode} needs storage shared between nodes; pinnace's local storage "
                f"offers ReadWriteOnce and ReadWriteOncePod"
            )
        if mode not in modes:
            modes.append(mode)
    return tuple(modes)


def _storage_request(value: Any, where: Where) -> int:
    data = as_map(value, where)
    check_fields(data, where, ("requests",), ("limits",))
    requests = as_map(require(data, "requests", where), where.key("requests"))
    raw = require(requests, "storage", where.key("requests"))
    try:
        size = parse_quantity_memory(raw)
    except QuantityError as e:
        raise where.key("requests").key("storage").error(str(e)) from None
    if size <= 0:
        raise where.key("requests").key("storage").error(f"must be more than 0, got {raw}")
    return size


def parse_claim_spec(value: Any, at: Where) -> tuple[tuple[str, ...], int, str]:
    """A claim's spec (also a StatefulSet claim template's): access modes, bytes, class."""
    spec = as_map(value, at)
    check_fields(
        spec,
        at,
        ("accessModes", "resources", "storageClassName", "volumeMode"),
        ("selector", "volumeName", "dataSource", "dataSourceRef", "volumeAttributesClassName"),
    )
    if spec.get("accessModes") is None:
        raise at.key("accessModes").error("is required (e.g. [ReadWriteOnce])")
    modes = _access_modes(spec["accessModes"], at.key("accessModes"))
    size = _storage_request(require(spec, "resources", at), at.key("resources"))
    storage_class = STORAGE_CLASS
    if spec.get("storageClassName") is not None:
        storage_class = as_str(spec["storageClassName"], at.key("storageClassName"))
        if storage_class not in (*STORAGE_CLASSES, ""):
            raise at.key("storageClassName").error(
                f"storage class {describe(storage_class)} does not exist; pinnace has "
                f'"{STORAGE_CLASS}" (node-local volumes, removed with their claim; leave '
                f'the field out to use it) and "local-retain" (kept when the claim goes)'
            )
        storage_class = storage_class or STORAGE_CLASS
    if spec.get("volumeMode") is not None:
        mode = one_of(spec["volumeMode"], at.key("volumeMode"), ("Filesystem", "Block"))
        if mode == "Block":
            raise at.key("volumeMode").error(
                'Block volumes are not supported; use "Filesystem" (the default)'
            )
    return modes, size, storage_class


def parse_persistent_volume_claim(data: dict[str, Any], where: Where) -> PersistentVolumeClaim:
    check_fields(data, where, ("apiVersion", "kind", "metadata", "spec"), (), ("status",))
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1123_subdomain)
    modes, size, storage_class = parse_claim_spec(require(data, "spec", where), where.key("spec"))
    return PersistentVolumeClaim(meta, modes, size, storage_class)
