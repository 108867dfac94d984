"""From files to validated objects: the entry point `parse_manifests`.

Each file is loaded with limits (loader.py), each document is dispatched on its
kind to the Deployment or Service parser, `kind: List` documents are unpacked,
and objects defined twice in one apply are refused. Nothing is half-accepted:
every problem of every document is gathered into one ManifestError (a line
each) and the caller stores nothing;
warnings (fields we know but ignore) are returned beside the objects for the
CLI to print.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from master.manifest.config import (
    parse_config_map,
    parse_namespace,
    parse_secret,
    parse_service_account,
)
from master.manifest.deployment import parse_deployment
from master.manifest.errors import ManifestError, Warned, Where, describe
from master.manifest.fields import as_list, as_map, as_str, check_fields
from master.manifest.ingress import parse_ingress, parse_ingress_class
from master.manifest.loader import TooManyDocuments, check_document, load_documents
from master.manifest.service import parse_service
from master.manifest.statefulset import parse_statefulset
from master.manifest.storage import parse_persistent_volume_claim
from master.manifest.warnings import IGNORED_KINDS, object_warnings
from master.model import (
    DEFAULT_NAMESPACE,
    ConfigMap,
    Deployment,
    Ingress,
    IngressClass,
    Namespace,
    PersistentVolumeClaim,
    Secret,
    Service,
    ServiceAccount,
    StatefulSet,
    is_namespaced,
)

ManifestObject = (
    Deployment
    | Service
    | ConfigMap
    | Secret
    | ServiceAccount
    | PersistentVolumeClaim
    | StatefulSet
    | Ingress
    | Namespace
    | IngressClass
)

_PARSERS: dict[str, tuple[str, Callable[[dict[str, Any], Where], ManifestObject]]] = {
    "Deployment": ("apps/v1", parse_deployment),
    "Service": ("v1", parse_service),
    "ConfigMap": ("v1", parse_config_map),
    "Secret": ("v1", parse_secret),
    "ServiceAccount": ("v1", parse_service_account),
    "PersistentVolumeClaim": ("v1", parse_persistent_volume_claim),
    "StatefulSet": ("apps/v1", parse_statefulset),
    "Ingress": ("networking.k8s.io/v1", parse_ingress),
    "Namespace": ("v1", parse_namespace),
    "IngressClass": ("networking.k8s.io/v1", parse_ingress_class),
}
_ACCEPTED = (
    "Deployment, StatefulSet (apps/v1), Ingress, IngressClass (networking.k8s.io/v1), Service, "
    "ConfigMap, "
    "Secret, ServiceAccount, PersistentVolumeClaim, Namespace or List (v1)"
)
# Kinds a Kubernetes user may reasonably send; named as not supported rather than unknown.
_KUBERNETES_KINDS = (
    "Pod", "ReplicaSet", "DaemonSet", "Job", "CronJob",
    "PersistentVolume", "Endpoints",
    "EndpointSlice", "Node", "Event", "ReplicationController",
    "CustomResourceDefinition",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ParsedManifests:
    """Every object of one apply, in file order, and the warnings to show the user;
    `sources` says where each object is ("file: document N"), for errors found later."""

    objects: tuple[ManifestObject, ...]
    warnings: tuple[str, ...]
    sources: tuple[str, ...] = ()


def _kind_of(data: dict[str, Any], where: Where) -> str:
    raw = data.get("kind")
    if raw is None:
        raise where.key("kind").error(f"is required; pinnace accepts {_ACCEPTED}")
    kind = as_str(raw, where.key("kind"))
    if kind in _PARSERS or kind == "List" or kind in IGNORED_KINDS:
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


# One object of a document: where it is, its kind and name, and the parsed object
# (None for a kind that is accepted with a warning and not stored).
_Found = tuple[Where, str, str, ManifestObject | None]


def _ignored(data: dict[str, Any], where: Where, kind: str) -> _Found:
    meta = as_map(data.get("metadata"), where.key("metadata"))
    name = meta.get("name")
    where.warn(f"{kind} is not supported, ignored ({IGNORED_KINDS[kind]})")
    return (where, kind, name if isinstance(name, str) else "", None)


def _parse_object(value: Any, where: Where, in_list: bool) -> list[_Found]:
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
    if kind in IGNORED_KINDS:
        return [_ignored(data, where, kind)]
    api_version, parse = _PARSERS[kind]
    _check_api_version(data, where, kind, api_version)
    obj = parse(data, where)
    return [(where, kind, obj.meta.name, obj)]


# At most this many errors are listed; a file with more is broken beyond a list.
MAX_ERRORS = 50


def _join(errors: list[str]) -> ManifestError:
    shown = errors[:MAX_ERRORS]
    if len(errors) > MAX_ERRORS:
        shown.append(f"... and {len(errors) - MAX_ERRORS} more errors")
    return ManifestError("\n".join(shown))


def in_namespace(obj: ManifestObject, at: Where, namespace: str | None) -> ManifestObject:
    """`obj` with its namespace filled: its own, else `namespace` (kubectl's -n, the URL's),
    else "default". An object naming another namespace than an explicit `namespace` is
    refused as kubectl refuses it; cluster-scoped kinds have none ("default" internally)."""
    own = obj.meta.namespace
    if not is_namespaced(obj.kind):
        chosen = DEFAULT_NAMESPACE
    elif own and namespace and own != namespace:
        raise (
            at.key("metadata")
            .key("namespace")
            .error(
                f'the namespace from the provided object "{own}" does not match the namespace '
                f'"{namespace}"; pass --namespace={own} or remove metadata.namespace'
            )
        )
    else:
        chosen = own or namespace or DEFAULT_NAMESPACE
    if chosen == own:
        return obj
    return replace(obj, meta=replace(obj.meta, namespace=chosen))


def parse_manifests(
    files: Sequence[tuple[str, bytes]], namespace: str | None = None
) -> ParsedManifests:
    """Parse and validate every document of every file; objects without a namespace go to
    `namespace` (None: "default").

    Every invalid document is reported, not only the first: the ManifestError
    raised holds one sentence per line. Nothing is returned (so nothing is
    stored) when any document is invalid.
    """
    return _parse_loaded(
        [(name, _file_loader(name, content)) for name, content in files], namespace
    )


def parse_documents(
    documents: Sequence[tuple[str, Any]], namespace: str | None = None
) -> ParsedManifests:
    """`parse_manifests` of documents already parsed (a Kubernetes API request's body,
    under a name for the messages): the same limits and validation, no YAML text."""
    return _parse_loaded(
        [(name, _value_loader(name, value)) for name, value in documents], namespace
    )


# documents before this file -> (documents in it, the non-empty ones as (number, value))
_Load = Callable[[int], tuple[int, list[tuple[int, Any]]]]


def _file_loader(name: str, content: bytes) -> _Load:
    return lambda before: load_documents(name, content, before)


def _value_loader(name: str, value: Any) -> _Load:
    return lambda before: check_document(name, value, before)


def _parse_loaded(files: Sequence[tuple[str, _Load]], namespace: str | None) -> ParsedManifests:
    """parse_manifests' body, over files each read by its own loader."""
    warnings: list[str] = []
    errors: list[str] = []
    objects: list[ManifestObject] = []
    sources: list[str] = []
    defined: dict[tuple[str, str, str], str] = {}
    documents_seen = 0
    for name, load in files:
        try:
            count, documents = load(documents_seen)
        except TooManyDocuments as e:
            errors.append(str(e))
            break
        except ManifestError as e:
            errors.append(str(e))
            continue
        documents_seen += count
        for number, value in documents:
            noted: list[Warned] = []
            try:
                found = _parse_object(value, Where(name, number, "", noted), False)
            except ManifestError as e:
                errors.append(str(e))
                continue
            warnings += object_warnings(noted, [(at.path, k, n) for at, k, n, _ in found])
            for at, _, _, found_obj in found:
                if found_obj is None:
                    continue
                try:
                    obj = in_namespace(found_obj, at, namespace)
                except ManifestError as e:
                    errors.append(str(e))
                    continue
                key = (obj.kind, obj.meta.namespace, obj.meta.name)
                if key in defined:
                    where = at.key("metadata").key("name")
                    errors.append(
                        f"{where.prefix()}: {obj.kind} {describe(obj.meta.name)} is defined "
                        f"twice (first in {defined[key]})"
                    )
                    continue
                defined[key] = f"{name}, document {number}"
                objects.append(obj)
                sources.append(f"{name}: document {at.document}")
                if len(objects) > MAX_OBJECTS:
                    errors.append(str(_too_many(at)))
                    raise _join(errors)  # the rest is not even read
    if errors:
        raise _join(errors)
    return ParsedManifests(objects=tuple(objects), warnings=tuple(warnings), sources=tuple(sources))
