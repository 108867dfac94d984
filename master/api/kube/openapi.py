"""OpenAPI v2 and v3 documents for the kinds pinnace serves, generated from master/manifest/schema.

kubectl reads `/openapi/v3` before `apply`, `create`, `edit` and `explain`:
- `apply` looks for the `fieldValidation` query parameter on each kind's PATCH
  operation (tagged with x-kubernetes-group-version-kind); finding it, kubectl
  leaves validation to the server (`fieldValidation=Strict`), which runs the
  same validators as `pinnace apply`;
- client-side `apply` computes strategic merge patches with the merge keys of
  the schema (x-kubernetes-patch-merge-key), the same keys the server applies;
- `explain` renders the component schemas and their descriptions.

Documents are pure data built once per process (they depend only on code).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from master.api.kube.resources import RESOURCES, Resource
from master.manifest.schema import MAP, OBJECT_META, POD_SPEC, WRITABLE, Field, Type

Obj = dict[str, Any]

_POD = Type(
    "io.k8s.api.core.v1.Pod",
    "A pod: containers a Deployment runs on one node. Made by the master, read-only here.",
    (
        Field("apiVersion", "The versioned schema of this object.", "string"),
        Field("kind", "The kind of this object.", "string"),
        Field("metadata", "Standard object metadata.", OBJECT_META),
        Field("spec", "What the pod runs.", POD_SPEC),
        Field("status", "The observed state.", "object", read_only=True),
    ),
    gvk=("", "v1", "Pod"),
)


def _generic(kind: str, group: str, doc: str) -> Type:
    """A kind described by its identity only; its other fields are left open."""
    prefix = f"io.k8s.api.{group.split('.')[0] or 'core'}.v1."
    return Type(
        prefix + kind,
        doc,
        (
            Field("apiVersion", "The versioned schema of this object.", "string"),
            Field("kind", "The kind of this object.", "string"),
            Field("metadata", "Standard object metadata.", OBJECT_META),
        ),
        gvk=(group, "v1", kind),
    )


_TYPED = {t.name for t in (*WRITABLE.values(), _POD)}


def top_types() -> dict[str, Type]:
    """Every served kind's schema, keyed by kind."""
    types: dict[str, Type] = {**WRITABLE, "Pod": _POD}
    for r in RESOURCES:
        if r.kind not in types and not r.subresource:
            types[r.kind] = _generic(r.kind, r.group, r.description)
    return types


def _named_types(root: Type, into: dict[str, Type]) -> None:
    if root.name in into:
        return
    into[root.name] = root
    for f in root.fields:
        if isinstance(f.type, Type):
            _named_types(f.type, into)


def _ref(name: str, v3: bool) -> str:
    return f"#/components/schemas/{name}" if v3 else f"#/definitions/{name}"


def _field_schema(f: Field, v3: bool) -> Obj:
    item: Obj
    t = f.type
    if isinstance(t, Type):
        item = {"$ref": _ref(t.name, v3)}
        if v3 and not f.is_list:
            item = {"allOf": [item]}
    elif t == "int-or-string":
        item = {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
        if v3:
            item = {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "x-kubernetes-int-or-string": True,
            }
    elif t == "any":
        item = {"x-kubernetes-preserve-unknown-fields": True}
    elif t == MAP:
        item = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
    elif t == "integer":
        item = {"type": "integer", "format": "int32"}
    else:
        item = {"type": t}
    if f.enum and not isinstance(t, Type):
        item["enum"] = list(f.enum)
    if f.minimum is not None:
        item["minimum"] = f.minimum
    if f.maximum is not None:
        item["maximum"] = f.maximum
    if not f.is_list:
        return {"description": f.description, **item}
    out: Obj = {"description": f.description, "type": "array", "items": item}
    if f.merge_key:
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = [f.merge_key]
        out["x-kubernetes-patch-merge-key"] = f.merge_key
        out["x-kubernetes-patch-strategy"] = "merge"
    else:
        out["x-kubernetes-list-type"] = "atomic"
    return out


def _type_schema(t: Type, v3: bool) -> Obj:
    out: Obj = {
        "description": t.description,
        "type": "object",
        "properties": {f.name: _field_schema(f, v3) for f in t.fields},
    }
    if t.required:
        out["required"] = list(t.required)
    if t.gvk is not None and t.name not in _TYPED:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if t.gvk is not None:
        group, version, kind = t.gvk
        out["x-kubernetes-group-version-kind"] = [
            {"group": group, "version": version, "kind": kind}
        ]
    return out


def _params(names: tuple[str, ...], v3: bool) -> list[Obj]:
    out = []
    for name in names:
        p: Obj = {"name": name, "in": "query", "description": name, "uniqueItems": True}
        if v3:
            p["schema"] = {"type": "string"}
        else:
            p["type"] = "string"
        out.append(p)
    return out


def _operations(r: Resource, t: Type | None, v3: bool) -> dict[str, Obj]:
    """Path item objects for one resource: collection and item paths."""
    gvk = {"group": r.group, "version": "v1", "kind": r.kind}
    base = "/api/v1" if not r.group else f"/apis/{r.group}/v1"
    ns = "/namespaces/{namespace}" if r.namespaced else ""
    ref = {"$ref": _ref(t.name, v3)} if t is not None else {"type": "object"}
    ok: Obj = {"description": "OK"}
    if v3:
        ok["content"] = {"application/json": {"schema": ref}}
    else:
        ok["schema"] = ref

    def op(action: str, verb_params: tuple[str, ...]) -> Obj:
        return {
            "operationId": f"{action}{r.kind}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": _params(verb_params, v3),
            "responses": {"200": ok},
        }

    writes = ("dryRun", "fieldManager", "fieldValidation")
    item: Obj = {"get": op("get", ())}
    collection: Obj = {"get": op("list", ("labelSelector", "fieldSelector", "limit", "watch"))}
    if "patch" in r.verbs:
        item["patch"] = op("patch", (*writes, "force"))
    if "update" in r.verbs:
        item["put"] = op("put", writes)
    if "delete" in r.verbs:
        item["delete"] = op("delete", ("gracePeriodSeconds", "propagationPolicy"))
    if "create" in r.verbs:
        collection["post"] = op("post", writes)
    return {f"{base}{ns}/{r.name}": collection, f"{base}{ns}/{r.name}/{{name}}": item}


def _gv_resources(group: str) -> list[Resource]:
    return [x for x in RESOURCES if x.group == group and not x.subresource]


@cache
def _v3_doc(group: str) -> bytes:
    types = top_types()
    named: dict[str, Type] = {}
    paths: Obj = {}
    for r in _gv_resources(group):
        t = types.get(r.kind)
        if t is not None:
            _named_types(t, named)
        paths.update(_operations(r, t, v3=True))
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "pinnace", "version": "v1"},
        "paths": paths,
        "components": {"schemas": {n: _type_schema(t, True) for n, t in sorted(named.items())}},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _gv_path(group: str) -> str:
    return "api/v1" if not group else f"apis/{group}/v1"


def v3_index() -> Obj:
    """`/openapi/v3`: where each group-version's document is, with a content hash."""
    paths = {}
    for group in sorted({r.group for r in RESOURCES}):
        digest = hashlib.sha256(_v3_doc(group)).hexdigest()[:32].upper()
        paths[_gv_path(group)] = {
            "serverRelativeURL": f"/openapi/v3/{_gv_path(group)}?hash={digest}"
        }
    return {"paths": paths}


def v3_document(gv_path: str) -> bytes | None:
    """`/openapi/v3/<gv_path>`, or None for a group-version pinnace does not serve."""
    for group in {r.group for r in RESOURCES}:
        if _gv_path(group) == gv_path:
            return _v3_doc(group)
    return None


@cache
def v2_document() -> bytes:
    types = top_types()
    named: dict[str, Type] = {}
    paths: Obj = {}
    for r in RESOURCES:
        if r.subresource:
            continue
        t = types.get(r.kind)
        if t is not None:
            _named_types(t, named)
        paths.update(_operations(r, t, v3=False))
    doc = {
        "swagger": "2.0",
        "info": {"title": "pinnace", "version": "v1"},
        "paths": paths,
        "definitions": {n: _type_schema(t, False) for n, t in sorted(named.items())},
    }
    return json.dumps(doc, separators=(",", ":")).encode()
