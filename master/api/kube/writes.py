"""Writes through the HTTP API: create, replace, patch, delete and scale.

Thin by design: a body (or the stored object with a patch applied) becomes a
manifest, master/manifest validates it exactly as for `pinnace apply` (same
words, now as a 422 Invalid naming the field), and master/app stores it with
the same apply semantics the gRPC API uses. What is HTTP-only is decided here:
optimistic concurrency (a replace or patch that names an older
resourceVersion is 409 Conflict), URL/body agreement, and mapping errors.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from master.api.fieldowners import field_tracker
from master.api.fieldsets import FieldSetError
from master.api.kube import errors
from master.api.kube.objects import render, scale
from master.api.kube.patch import PatchError, json_patch, merge_patch, strategic_merge
from master.api.kube.protobuf import ProtobufError, decode
from master.api.kube.resources import Resource
from master.api.kube.resources import by_kind as resource_of
from master.api.managedfields import FieldConflicts, Manager, applied_object
from master.app.apply import FieldTracker, ServiceAdmission, apply_objects
from master.app.delete import NodeLifecycle, delete_objects
from master.app.drain import cordon_node
from master.app.errors import AppError
from master.app.scale import scale_deployment, scale_statefulset
from master.manifest import ManifestError, parse_documents
from master.manifest.loader import fewer_values_than
from master.manifest.schema import WRITABLE
from master.model import DEFAULT_NAMESPACE, Deployment, StatefulSet
from master.state import ClusterState

Obj = dict[str, Any]

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


APPLY_PATCH = "application/apply-patch+yaml"
# A body with fewer values than this (keys, scalars, collections) is validated on the
# event loop; a larger one in a thread (a Deployment is ~150).
INLINE_VALUES = 2_000


@dataclass(frozen=True, slots=True)
class Writer:
    """Who writes, as the request says: `?fieldManager=` (else the User-Agent's
    product, as Kubernetes defaults it) and, for server-side apply, `?force=`."""

    manager: str
    force: bool = False
    manager_given: bool = True


def writer(field_manager: str | None, user_agent: str, force: str | None) -> Writer:
    """The request's writer; 422 Invalid for options Kubernetes refuses."""
    if field_manager is not None and (len(field_manager) > 128 or not field_manager.isprintable()):
        raise _invalid_options(
            "fieldManager: Invalid value: must be at most 128 printable characters"
        )
    if force not in (None, "", "true", "false"):
        raise errors.bad_request(f"force must be true or false, got {force[:20]!r}")
    default = user_agent.split("/", 1)[0].strip()[:128]
    return Writer(field_manager or default, force == "true", bool(field_manager))


def _invalid_options(why: str) -> errors.KubeError:
    return errors.KubeError(
        422,
        "Invalid",
        f'PatchOptions.meta.k8s.io "" is invalid: {why}',
        {"group": "meta.k8s.io", "kind": "PatchOptions",
         "causes": [{"reason": "FieldValueInvalid", "message": why.split(": ", 1)[1],
                     "field": why.split(": ", 1)[0]}]},
    )  # fmt: skip


def _update(
    w: Writer, r: Resource, now: float, sent: Any = None, subresource: str = ""
) -> FieldTracker:
    """An Update by the request's manager; `sent`: the object as the request has it."""
    manager = Manager(w.manager, "Update", r.api_version, subresource)
    return field_tracker(manager, now, sent=sent if isinstance(sent, dict) else None)


def conflicts_error(e: FieldConflicts) -> errors.KubeError:
    """409 Conflict with one FieldManagerConflict cause per field (Kubernetes' shape)."""
    causes = [
        {"type": "FieldManagerConflict", "message": f"conflict with {c.manager}", "field": c.path}
        for c in e.conflicts
    ]
    return errors.KubeError(409, "Conflict", str(e), {"causes": causes})


@dataclass(frozen=True, slots=True)
class WriteResult:
    obj: Obj
    created: bool
    warnings: tuple[str, ...]


def app_error(e: AppError, r: Resource, name: str) -> errors.KubeError:
    missing_namespace = re.match(r'namespaces "([^"]*)" not found', e.message)
    if e.code == "not_found" and missing_namespace:
        return errors.not_found("namespaces", "", missing_namespace.group(1))
    if e.code == "not_found":
        return errors.not_found(r.name, r.group, name)
    if e.code == "failed_precondition" and "being terminated" in e.message:
        # Kubernetes answers 403 Forbidden for content in a Terminating namespace.
        return errors.KubeError(
            403,
            "Forbidden",
            f'{r.name} "{name[:253]}" is forbidden: {e.message.split(": ", 1)[-1]}',
        )
    if e.code == "already_exists":
        return errors.already_exists(r.name, r.group, name)
    if e.code == "invalid":
        return errors.invalid(
            r.kind, r.group, name, f"x: document 1: {e.message.split(': ', 1)[-1]}"
        )
    if e.code == "unavailable":
        return errors.KubeError(503, "ServiceUnavailable", e.message)
    if e.code == "outcome_unknown":
        # What Kubernetes answers when etcd did not confirm a write in time.
        return errors.KubeError(504, "Timeout", e.message)
    if e.code == "internal":
        # The store refused the write (a full disk): Kubernetes answers 500 when etcd does.
        return errors.KubeError(500, "InternalError", e.message)
    return errors.KubeError(409, "Conflict", e.message)


def decode_body(body: bytes, content_type: str) -> Any:
    if "protobuf" in content_type:
        # kubectl's typed creates send protobuf only (master/api/kube/protobuf.py).
        try:
            return decode(body)
        except ProtobufError as e:
            raise errors.KubeError(
                415,
                "UnsupportedMediaType",
                "pinnace reads JSON, YAML and protobuf bodies of the kinds it serves; "
                f"this protobuf body is not one: {e}",
            ) from None
    try:
        if "yaml" in content_type:
            return yaml.safe_load(body.decode())
        return json.loads(body)
    except (ValueError, yaml.YAMLError) as e:
        raise errors.bad_request(f"the request body is not valid JSON or YAML: {e}") from None


def _check_identity(r: Resource, body: Any, name: str | None, namespace: str | None) -> str:
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    if body.get("kind") not in (None, r.kind):
        raise errors.bad_request(
            f"the body's kind {str(body.get('kind'))[:60]!r} does not match the URL ({r.name})"
        )
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise errors.invalid(r.kind, r.group, name or "", "x: document 1: metadata: is required")
    ns = meta.get("namespace")
    if namespace is not None and ns not in (None, namespace):
        raise errors.bad_request(
            f"the namespace of the provided object ({str(ns)[:63]}) does not match the "
            f"namespace sent on the request ({namespace})"
        )
    body_name = meta.get("name")
    if name is not None and body_name not in (None, name):
        raise errors.bad_request(
            f"the name of the object ({str(body_name)[:253]}) does not match the name on the URL "
            f"({name})"
        )
    return str(body_name or name or "")


async def _store(
    state: ClusterState,
    r: Resource,
    body: Obj,
    name: str,
    now: float,
    dry_run: bool,
    create_only: bool,
    admit: ServiceAdmission | None = None,
    namespace: str | None = None,
    track: FieldTracker | None = None,
) -> WriteResult:
    body = {**body, "apiVersion": r.api_version, "kind": r.kind}
    ns = namespace if r.namespaced else None
    documents = [(f"{r.name}/{name}", body)]
    try:
        # The body is parsed already: validated as it is (no YAML round trip), on the loop
        # when small (~0.3 ms for a Deployment; a hop to a thread and back costs two
        # wake-ups, each a wait for a CPU on a loaded machine), else in a thread.
        if fewer_values_than(body, INLINE_VALUES):
            parsed = parse_documents(documents, ns)
        else:
            parsed = await asyncio.to_thread(parse_documents, documents, ns)
    except ManifestError as e:
        raise errors.invalid(r.kind, r.group, name, str(e)) from None
    try:
        applied = await apply_objects(
            state, parsed.objects, now, dry_run, create_only, admit_services=admit, track=track
        )
    except AppError as e:
        raise app_error(e, r, name) from None
    except FieldConflicts as e:
        raise conflicts_error(e) from None
    result = applied[0]
    warnings = tuple(errors.split_manifest_error(w)[0] + ": " + errors.split_manifest_error(w)[1]
                     for w in parsed.warnings)  # fmt: skip
    return WriteResult(render(result.obj, now, state), result.action == "created", warnings)


async def create(
    state: ClusterState, r: Resource, body: Any, namespace: str | None, now: float, dry_run: bool,
    admit: ServiceAdmission | None = None, w: Writer = Writer(""),
) -> WriteResult:  # fmt: skip
    if "create" not in r.verbs:
        hint = (
            ": make a Deployment instead (kubectl create deployment NAME --image=IMAGE)"
            if r.kind == "Pod"
            else ""
        )
        raise errors.method_not_allowed(f"{r.name} are made by pinnace, not created by users{hint}")
    name = _check_identity(r, body, None, namespace)
    return await _store(
        state, r, body, name, now, dry_run, create_only=True, admit=admit, namespace=namespace,
        track=_update(w, r, now, body),
    )  # fmt: skip


def _check_version(r: Resource, name: str, body: Obj, current_rv: str) -> None:
    wanted = (body.get("metadata") or {}).get("resourceVersion")
    if wanted not in (None, "") and str(wanted) != current_rv:
        raise errors.conflict(
            r.name,
            r.group,
            name,
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
        )


async def replace(
    state: ClusterState, r: Resource, name: str, body: Any, namespace: str | None, now: float,
    dry_run: bool, admit: ServiceAdmission | None = None, w: Writer = Writer(""),
) -> WriteResult:  # fmt: skip
    if "update" not in r.verbs:
        raise errors.method_not_allowed(f"{r.name} cannot be replaced through the API")
    _check_identity(r, body, name, namespace)
    current = state.get(r.kind, name, namespace or DEFAULT_NAMESPACE)
    if current is None:
        raise errors.not_found(r.name, r.group, name)
    _check_version(r, name, body, str(current.meta.resource_version))
    return await _store(
        state, r, body, name, now, dry_run, create_only=False, admit=admit, namespace=namespace,
        track=_update(w, r, now, body),
    )  # fmt: skip


def apply_patch(current: Obj, patch: Any, content_type: str, kind: str) -> Any:
    try:
        if content_type.startswith("application/json-patch+json"):
            return json_patch(current, patch)
        if content_type.startswith("application/merge-patch+json"):
            return merge_patch(current, patch)
        if content_type.startswith("application/strategic-merge-patch+json"):
            return strategic_merge(current, patch, WRITABLE.get(kind))
    except PatchError as e:
        raise errors.KubeError(422, "Invalid", f"the patch does not apply: {e}") from None
    raise errors.KubeError(
        415, "UnsupportedMediaType", f"the patch type {content_type[:80]!r} is not supported"
    )


async def patch(
    state: ClusterState, r: Resource, name: str, body: bytes, content_type: str, now: float,
    dry_run: bool, admit: ServiceAdmission | None = None, namespace: str = DEFAULT_NAMESPACE,
    w: Writer = Writer(""),
) -> WriteResult:  # fmt: skip
    if "patch" not in r.verbs:
        raise errors.method_not_allowed(f"{r.name} cannot be patched through the API")
    is_apply = content_type.startswith(APPLY_PATCH)
    if is_apply and not w.manager_given:
        # kubectl always names itself; other clients must (Kubernetes refuses the same).
        raise _invalid_options("fieldManager: Required value: is required for apply patch")
    if w.force and not is_apply:
        raise _invalid_options("force: Forbidden: may not be specified for non-apply patch")
    patch_doc = decode_body(body, content_type)
    if r.kind == "Node":
        return await _patch_node(state, name, patch_doc, content_type, now)
    if is_apply:
        return await _server_side_apply(state, r, name, patch_doc, now, dry_run, admit,
                                        namespace, w)  # fmt: skip
    current = state.get(r.kind, name, namespace)
    if current is None:
        raise errors.not_found(r.name, r.group, name)
    rendered = render(current, now, state)
    patched = apply_patch(rendered, patch_doc, content_type, r.kind)
    _check_identity(r, patched, name, namespace if r.namespaced else None)
    if isinstance(patch_doc, dict):
        _check_version(r, name, patch_doc, str(current.meta.resource_version))
    return await _store(
        state, r, patched, name, now, dry_run, create_only=False, admit=admit,
        namespace=namespace, track=_update(w, r, now, patched),
    )  # fmt: skip


async def _server_side_apply(
    state: ClusterState, r: Resource, name: str, config: Any, now: float, dry_run: bool,
    admit: ServiceAdmission | None, namespace: str, w: Writer,
) -> WriteResult:  # fmt: skip
    """PATCH application/apply-patch+yaml: `config` merged into the object (or creating
    it), what `w` applied before and no longer applies removed, its fields owned by `w`;
    a changed value another manager owns is 409 Conflict unless forced."""
    _check_identity(r, config, name, namespace if r.namespaced else None)
    if config.get("apiVersion") not in (None, r.api_version):
        raise errors.bad_request(
            f"the body's apiVersion {str(config.get('apiVersion'))[:60]!r} does not match the "
            f"URL ({r.api_version})"
        )
    manager = Manager(w.manager, "Apply", r.api_version)
    current = state.get(r.kind, name, namespace)
    live = render(current, now, state) if current is not None else {}
    entries = current.meta.managed_fields if current is not None else ()
    try:
        wanted = applied_object(entries, live, config, r.kind, manager)
    except FieldSetError as e:
        raise errors.KubeError(
            422, "Invalid", f"the applied configuration does not fit: {e}"
        ) from None
    _check_version(r, name, config, str(current.meta.resource_version) if current else "")
    track = field_tracker(manager, now, config, w.force)
    return await _store(
        state, r, wanted, name, now, dry_run, create_only=False, admit=admit,
        namespace=namespace, track=track,
    )  # fmt: skip


async def _patch_node(
    state: ClusterState, name: str, patch_doc: Any, content_type: str, now: float
) -> WriteResult:
    """Nodes are the agents'; users may only cordon and uncordon them (`kubectl cordon`)."""
    current = state.get("Node", name)
    if current is None:
        raise errors.not_found("nodes", "", name)
    before = render(current, now, state)
    after = apply_patch(before, patch_doc, content_type, "Node")
    if not isinstance(after, dict):
        raise errors.bad_request("the patched node is not an object")
    wanted = bool((after.get("spec") or {}).get("unschedulable", False))
    rest = {k: v for k, v in after.items() if k != "spec"}
    others = {k: v for k, v in (after.get("spec") or {}).items() if k != "unschedulable"}
    if rest != {k: v for k, v in before.items() if k != "spec"} or others != {
        k: v for k, v in before["spec"].items() if k != "unschedulable"
    }:
        raise errors.KubeError(
            422, "Invalid",
            f'Node "{name}" is invalid: only spec.unschedulable may be changed (cordon, '
            f"uncordon); the rest of a node is its agent's",
        )  # fmt: skip
    try:
        await cordon_node(state, name, wanted)
    except AppError as e:
        raise app_error(e, resource_of("Node"), name) from None
    stored = state.get("Node", name)
    if stored is None:  # the node was deleted between the write and this read
        raise errors.not_found("nodes", "", name)
    return WriteResult(render(stored, now, state), False, ())


async def delete(
    state: ClusterState, lifecycle: NodeLifecycle, r: Resource, name: str, options: Obj,
    now: float, dry_run: bool, namespace: str = DEFAULT_NAMESPACE,
) -> Obj:  # fmt: skip
    if "delete" not in r.verbs:
        raise errors.method_not_allowed(f"{r.name} cannot be deleted")
    policy = options.get("propagationPolicy")
    # Foreground is served as Background (the owner goes at once, its dependents after it);
    # Orphan keeps the dependents, unowned (master/app/orphans.py).
    if policy not in (None, "", "Background", "Foreground", "Orphan"):
        raise errors.KubeError(
            422, "Invalid",
            f"propagationPolicy {str(policy)[:30]!r} is not one of Orphan, Background, "
            f"Foreground",
        )  # fmt: skip
    # The deprecated orphanDependents (before propagationPolicy) means the same.
    orphan = policy == "Orphan" or (not policy and options.get("orphanDependents") is True)
    grace = grace_period(options.get("gracePeriodSeconds"))
    current = state.get(r.kind, name, namespace)
    if current is None:
        raise errors.not_found(r.name, r.group, name)
    rendered = render(current, now, state)
    preconditions = options.get("preconditions") or {}
    if preconditions.get("uid") not in (None, current.meta.uid):
        raise errors.conflict(r.name, r.group, name, "the UID in the precondition does not match")
    if dry_run:
        return rendered
    try:
        await delete_objects(
            state, lifecycle, [(r.kind, name, namespace)], missing_ok=False, grace_seconds=grace,
            orphan=orphan,
        )  # fmt: skip
    except AppError as e:
        raise app_error(e, r, name) from None
    after = state.get(r.kind, name, namespace)
    return render(after, now, state) if after is not None else rendered


def grace_period(value: object) -> int | None:
    """DeleteOptions.gracePeriodSeconds (a number in the body, text in the query)."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise errors.bad_request(f"gracePeriodSeconds must be an integer >= 0, got {str(value)[:30]!r}")


async def set_scale(
    state: ClusterState,
    name: str,
    body: bytes,
    content_type: str,
    method: str,
    now: float,
    namespace: str = DEFAULT_NAMESPACE,
    w: Writer = Writer(""),
    kind: str = "Deployment",
) -> Obj:
    """A PUT or PATCH of a deployment's or (`kind`) statefulset's Scale."""
    plural = resource_of(kind).name
    target = state.get(kind, name, namespace)
    if not isinstance(target, (Deployment, StatefulSet)):
        raise errors.not_found(plural, "apps", name)
    doc = decode_body(body, content_type)
    if method == "PATCH":
        doc = apply_patch(scale(target), doc, content_type, "Scale")
    else:
        if isinstance(doc, dict):
            wanted = (doc.get("metadata") or {}).get("resourceVersion")
            if wanted not in (None, "") and str(wanted) != str(target.meta.resource_version):
                raise errors.conflict(plural, "apps", name, "the object has been modified")
    replicas = (doc.get("spec") or {}).get("replicas") if isinstance(doc, dict) else None
    if method == "PUT" and isinstance(doc, dict) and "replicas" not in (doc.get("spec") or {}):
        # ScaleSpec.replicas is omitempty: a Scale without it is a scale to 0, as Kubernetes
        # reads it (a typed client's protobuf Scale of 0 replicas arrives so).
        replicas = 0
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise errors.invalid(
            "Scale", "autoscaling", name,
            f"x: document 1: spec.replicas: must be an integer >= 0, got {replicas!r}",
        )  # fmt: skip
    try:
        track = _update(w, resource_of(kind), now, subresource="scale")
        stored: Deployment | StatefulSet
        if isinstance(target, StatefulSet):
            stored = await scale_statefulset(state, name, replicas, namespace, track=track)
        else:
            stored = await scale_deployment(state, name, replicas, namespace, track=track)
    except AppError as e:
        raise errors.invalid(
            "Scale", "autoscaling", name, f"x: document 1: spec.replicas: {e}"
        ) from None
    return scale(stored)
