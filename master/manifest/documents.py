"""From files to validated objects: the entry point `parse_manifests`.

Each file is loaded with limits (loader.py), each document is dispatched on its
kind to the Deployment or Service parser, `kind: List` documents are unpacked,
and objects defined twice in one apply are refused. Nothing is half-accepted:
the first problem raises one ManifestError and the caller stores nothing;
warnings (fields we know but ignore) are returned beside the objects for the
CLI to print.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from master.manifest.deployment import parse_deployment
from master.manifest.errors import ManifestError, Where, describe
from master.manifest.fields import as_list, as_map, as_str, check_fields
from master.manifest.loader import load_documents
from master.manifest.service import parse_service
from master.model import Deployment, Service

ManifestObject = Deployment | Service

_PARSERS: dict[str, tuple[str, Callable[[dict[str, Any], Where], ManifestObject]]] = {
    "Deployment": ("apps/v1", parse_deployment),
    "Service": ("v1", parse_service),
}
_ACCEPTED = "Deployment (apps/v1), Service (v1) or List (v1)"
# Kinds a Kubernetes user may reasonably send; named as not supported rather than unknown.
_KUBERNETES_KINDS = (
    "Pod", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ConfigMap", "Secret",
    "Ingress", "Namespace", "PersistentVolumeClaim", "PersistentVolume", "ServiceAccount",
    "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "NetworkPolicy", "Endpoints",
    "EndpointSlice", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Node", "Event",
    "ReplicationController", "LimitRange", "ResourceQuota", "StorageClass",
    "CustomResourceDefinition",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ParsedManifests:
    """Every object of one apply, in file order, and the warnings to show the user."""

    objects: tuple[ManifestObject, ...]
    warnings: tuple[str, ...]


def _kind_of(data: dict[str, Any], where: Where) -> str:
    raw = data.get("kind")
    if raw is None:
        raise where.key("kind").error(f"is required; pinnace accepts {_ACCEPTED}")
    kind = as_str(raw, where.key("kind"))
    if kind in _PARSERS or kind == "List":
        return kind
    if kind in _KUBERNETES_KINDS:
        raise where.key("kind").error(f"{kind} is not supported yet; pinnace accepts {_ACCEPTED}")
    close = difflib.get_close_matches(kind, [*_PARSERS, "List"], n=1, cutoff=0.6)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    raise where.key("kind").error(
        f"unknown kind {describe(kind)}{hint}; pinnace accepts {_ACCEPTED}"
    )


def _check_api_version(data: dict[str, Any], where: Where, kind: str, expected: str) -> None:
    version = data.get("apiVersion")
    if version != expected:
        shown = "it is missing" if version is None else f"got {describe(version)}"
        raise where.key("apiVersion").error(f'must be "{expected}" for kind {kind}, {shown}')


# One apply stores at most this many objects, however they are packed: a
# `kind: List` document counts each of its items, not once.
MAX_OBJECTS = 200


def _too_many(where: Where) -> ManifestError:
    return where.error(
        f"too many objects (at most {MAX_OBJECTS} in one apply, each item of a List counted)"
    )


def _parse_object(value: Any, where: Where, in_list: bool) -> list[tuple[Where, ManifestObject]]:
    if not isinstance(value, dict):
        raise where.error(f"must be a Kubernetes object (a map), got {describe(value)}")
    data = as_map(value, where)
    kind = _kind_of(data, where)
    if kind == "List":
        if in_list:
            raise where.key("kind").error("a List may not contain another List")
        _check_api_version(data, where, kind, "v1")
        check_fields(data, where, ("apiVersion", "kind", "items"), (), ("metadata",))
        at = where.key("items")
        if isinstance(data.get("items"), list) and len(data["items"]) > MAX_OBJECTS:
            raise _too_many(at)  # before parsing thousands of items
        return [
            obj
            for i, item in enumerate(as_list(data.get("items"), at))
            for obj in _parse_object(item, at.index(i), True)
        ]
    api_version, parse = _PARSERS[kind]
    _check_api_version(data, where, kind, api_version)
    return [(where, parse(data, where))]


def parse_manifests(files: Sequence[tuple[str, bytes]]) -> ParsedManifests:
    """Parse and validate every document of every file; raise ManifestError on the first problem."""
    warnings: list[str] = []
    objects: list[ManifestObject] = []
    defined: dict[tuple[str, str], str] = {}
    documents_seen = 0
    for name, content in files:
        count, documents = load_documents(name, content, documents_seen)
        documents_seen += count
        for number, value in documents:
            for at, obj in _parse_object(value, Where(name, number, "", warnings), False):
                key = (obj.kind, obj.meta.name)
                if key in defined:
                    raise (
                        at.key("metadata")
                        .key("name")
                        .error(
                            f"{obj.kind} {describe(obj.meta.name)} is defined twice "
                            f"(first in {defined[key]})"
                        )
                    )
                defined[key] = f"{name}, document {number}"
                objects.append(obj)
                if len(objects) > MAX_OBJECTS:
                    raise _too_many(at)
    return ParsedManifests(objects=tuple(objects), warnings=tuple(warnings))
