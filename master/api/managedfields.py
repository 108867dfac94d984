"""metadata.managedFields: who owns which fields, and server-side apply over it (pure).

Every write through an API names a manager (kubectl sends `?fieldManager=`, the
pinnace CLI is `pinnace`). An ordinary write (create, replace, patch, scale) is an
Update: its manager takes the fields it added or changed, and fields it removed
leave every manager. A server-side apply is an Apply: the manager owns exactly
the fields of its applied configuration; fields it applied before and applies no
more are removed from the object unless another manager owns them; and changing
a value another manager owns is a conflict (409, one cause per field) unless
forced, which takes the field over. This is Kubernetes' structured-merge-diff
Updater, over the objects as the API renders them (master/api/render.py), so
values compare after pinnace's own normalisation ("0.5" cpu is "500m").

Flow of an apply: `applied_object` merges the configuration into the live object
and prunes (what the validators then read); once the application layer has
turned that into the object it would store, `record` compares the two rendered
objects and writes the ledger into the object's metadata (raising
`FieldConflicts` to refuse). An update is only the second step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from master.api.fieldsets import (
    DEDUCED,
    FieldSet,
    FieldSetError,
    Path,
    Shape,
    associative,
    compare,
    f,
    from_fields_v1,
    merge,
    path_string,
    prune,
    set_of_scalars,
    string_map,
    to_field_set,
    to_fields_v1,
)
from master.manifest.meta import MANAGED_ANNOTATIONS
from master.manifest.schema import MAP, POD_TEMPLATE, WRITABLE, Field, Type
from master.model import ManagedFieldsEntry, StoredObject, evolve

Obj = dict[str, Any]
Operation = Literal["Apply", "Update"]

# Kubernetes' list-map keys where they differ from the strategic-merge key the schema
# carries (ports are keyed by port and protocol; a missing protocol is TCP).
_LIST_KEYS: Mapping[tuple[str, str], tuple[tuple[str, ...], Mapping[str, Any]]] = {
    ("io.k8s.api.core.v1.Container", "ports"): (("containerPort", "protocol"), {"protocol": "TCP"}),
    ("io.k8s.api.core.v1.ServiceSpec", "ports"): (("port", "protocol"), {"protocol": "TCP"}),
}
# Structs Kubernetes owns whole (`+structType=atomic`): a label selector is one value.
_ATOMIC_TYPES = frozenset({"io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"})
# Lists of scalars Kubernetes merges as sets (`+listType=set`).
_SET_LISTS: frozenset[tuple[str, str]] = frozenset()


def _field_shape(owner: Type, fld: Field, seen: dict[str, Shape]) -> Shape:
    item: Shape
    if isinstance(fld.type, Type):
        item = shape_of_type(fld.type, seen)
    elif fld.type == MAP:
        item = string_map()
    elif fld.type in ("any", "object"):
        item = DEDUCED
    else:
        item = Shape("scalar")
    if not fld.is_list:
        return item
    if (owner.name, fld.name) in _SET_LISTS:
        return set_of_scalars()
    if fld.merge_key:
        keys, defaults = _LIST_KEYS.get((owner.name, fld.name), ((fld.merge_key,), {}))
        return associative(item, *keys, **defaults)
    return Shape("atomic")


def shape_of_type(t: Type, seen: dict[str, Shape] | None = None) -> Shape:
    """The merge shape of a schema type (master/manifest/schema.py)."""
    seen = {} if seen is None else seen
    if t.name in _ATOMIC_TYPES:
        return Shape("atomic")
    if t.name not in seen:
        fields: dict[str, Shape] = {}
        seen[t.name] = Shape("struct", fields=fields)
        for fld in t.fields:
            fields[fld.name] = _field_shape(t, fld, seen)
    return seen[t.name]


_META = Shape("struct", fields={"labels": string_map(), "annotations": string_map()})
_TEMPLATE = shape_of_type(POD_TEMPLATE)
_SHAPES: dict[str, Shape] = {kind: shape_of_type(t) for kind, t in WRITABLE.items()}
# Kinds without a typed schema merge as deduced shapes; their pod templates are typed.
_SHAPES["StatefulSet"] = Shape(
    "struct",
    fields={"metadata": _META, "spec": Shape("struct", fields={"template": _TEMPLATE})},
)


_SHAPES["ConfigMap"] = Shape(
    "struct", fields={"metadata": _META, "data": string_map(), "binaryData": string_map()}
)
_SHAPES["Secret"] = Shape(
    "struct", fields={"metadata": _META, "data": string_map(), "stringData": string_map()}
)


_UNTYPED = Shape("struct", fields={"metadata": _META})


def shape_of(kind: str) -> Shape:
    """The kind's merge shape (kinds without a schema, events among them: metadata's maps)."""
    return _SHAPES.get(kind, _UNTYPED)


# The status subresource: conditions are keyed by type in every kind (Kubernetes'
# listMapKey); the rest merges as deduced (maps field by field, other lists whole).
STATUS_SHAPE = Shape(
    "struct",
    fields={"status": Shape("struct", fields={"conditions": associative(DEDUCED, "type")})},
)


def tracked_status(obj: Obj) -> Obj:
    """What a write to the status subresource has managers for: the status alone."""
    return {"status": obj.get("status") or {}}


# -- what is tracked ------------------------------------------------------------------

# Identity and bookkeeping are nobody's fields (Kubernetes strips the same).
_UNTRACKED_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
)
_UNTRACKED_TOP = ("apiVersion", "kind", "status")
# Never removed by an apply, whoever owns them.
_IDENTITY: FieldSet = frozenset(
    {(f("apiVersion"),), (f("kind"),), (f("status"),)}
    | {(f("metadata"), f(name)) for name in _UNTRACKED_META}
)


def tracked(obj: Obj) -> Obj:
    """The part of a rendered object whose fields have managers."""
    out = {k: v for k, v in obj.items() if k not in _UNTRACKED_TOP}
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in _UNTRACKED_META}
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            meta["annotations"] = {
                k: v for k, v in annotations.items() if k not in MANAGED_ANNOTATIONS
            }
        out["metadata"] = meta
    return out


_NONE: FieldSet = frozenset()
_METADATA_ITSELF: FieldSet = frozenset({(f("metadata"),)})


def _strip(paths: FieldSet) -> FieldSet:
    """`paths` without metadata itself (a struct, nobody's field; its fields stay)."""
    return paths - _METADATA_ITSELF


# -- the ledger ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Manager:
    """Who is writing: kubectl's `fieldManager`, the operation, the API version used."""

    name: str
    operation: Operation
    api_version: str
    subresource: str = ""

    def owns(self, entry: ManagedFieldsEntry) -> bool:
        """Whether `entry` is this manager's (Kubernetes' manager identity: an Apply
        entry per manager, an Update entry per manager and API version)."""
        same = (entry.manager, entry.operation, entry.subresource) == (
            self.name,
            self.operation,
            self.subresource,
        )
        return same and (self.operation == "Apply" or entry.api_version == self.api_version)


def describe(entry: ManagedFieldsEntry) -> str:
    """A manager as Kubernetes' conflict messages name it."""
    text = json.dumps(entry.manager)
    if entry.subresource:
        text += f" with subresource {json.dumps(entry.subresource)}"
    if entry.operation == "Update":
        text += f" using {entry.api_version}"
    return text


@dataclass(frozen=True, slots=True)
class Conflict:
    manager: str  # as `describe` names it
    path: str  # `.spec.replicas`


class FieldConflicts(Exception):
    """An apply would change fields other managers own; nothing was written."""

    def __init__(self, conflicts: Sequence[Conflict]) -> None:
        self.conflicts = tuple(conflicts)
        super().__init__(conflict_message(self.conflicts))


def conflict_message(conflicts: Sequence[Conflict]) -> str:
    """Kubernetes' wording (apiserver fieldmanager's getConflictMessage)."""
    if len(conflicts) == 1:
        c = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {c.manager}: {c.path}"
    lines = []
    for manager in sorted({c.manager for c in conflicts}):
        lines.append(f"conflicts with {manager}:")
        lines.extend(f"- {c.path}" for c in conflicts if c.manager == manager)
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def entry_fields(entry: ManagedFieldsEntry) -> FieldSet:
    """An entry's field set (an unreadable one owns nothing rather than failing writes).

    Remembered by its text: the pods of one Deployment carry the same entries, and each
    of the master's writes (a status, an event's count) reads every entry of the object."""
    text = entry.fields_v1
    found = _FIELDS_OF_TEXT.get(text)
    if found is None:
        try:
            found = from_fields_v1(json.loads(text))
        except (ValueError, FieldSetError):
            found = frozenset()
        _remember(_FIELDS_OF_TEXT, text, found)
    return found


# Field sets and their FieldsV1 text both ways, and the fields a new object's rendering
# sets by its skeleton (`_created_fields`): pure functions of hashable inputs, kept while
# there are at most MEMO_LIMIT of each. Parsing, walking and encoding field sets was most
# of the master's CPU from apply to Running at scale (1,000 nodes / 10,000 pods: 5 writes
# a pod, each recorded), and the answers repeat from pod to pod and event to event.
MEMO_LIMIT = 4096
_FIELDS_OF_TEXT: dict[str, FieldSet] = {}
_TEXT_OF_FIELDS: dict[FieldSet, str] = {}
_CREATED: dict[tuple[str, bool, object], FieldSet] = {}
_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(memo: dict[_K, _V], key: _K, value: _V) -> None:
    if len(memo) >= MEMO_LIMIT:
        memo.clear()  # a new working set (another kind of object written) fills it again
    memo[key] = value


def skeleton(value: Any) -> object:
    """What a rendered value's field set depends on, hashable: its maps' keys and the
    skeletons under them, None and empty maps as themselves, any other scalar as 1, and
    lists whole (their items' keys name fields). Two values with one skeleton set the same
    fields under any shape (fieldsets.to_field_set, and compare from nothing)."""
    if isinstance(value, dict):
        # (A list and inline scalars, not a generator per map: this runs over every
        # object the master creates, to find the fields remembered for it.)
        out: list[object] = ["d"]
        for name, child in value.items():
            if child is None:
                out.append((name, None))
            elif isinstance(child, dict | list):
                out.append((name, skeleton(child)))
            else:
                out.append((name, 1))
        return tuple(out)
    if isinstance(value, list):
        return ("l", json.dumps(value, sort_keys=True, default=repr))
    return None if value is None else 1


def _created_fields(view: Obj, shape: Shape, kind: str, status: bool) -> FieldSet:
    """The fields a new object's `view` sets (compare from nothing: all added), stripped."""
    key = (kind, status, skeleton(view))
    found = _CREATED.get(key)
    if found is None:
        found = _strip(compare({}, view, shape).added)
        _remember(_CREATED, key, found)
    return found


def render_entries(
    entries: Sequence[ManagedFieldsEntry], rfc3339: Callable[[float], str | None]
) -> list[Obj]:
    """metadata.managedFields as the API serves it."""
    out = []
    for e in entries:
        item: Obj = {
            "manager": e.manager,
            "operation": e.operation,
            "apiVersion": e.api_version,
            "time": rfc3339(e.time),
            "fieldsType": "FieldsV1",
            "fieldsV1": json.loads(e.fields_v1),
        }
        if e.subresource:
            item["subresource"] = e.subresource
        out.append(item)
    return out


def entries_from_request(obj: Any) -> tuple[ManagedFieldsEntry, ...] | None:
    """metadata.managedFields as a client sent them (kubectl rewrites them when it moves
    an object from client-side to server-side apply). None when absent, empty or not
    readable: the stored ledger then stays, so clients that do not know about
    managedFields cannot drop it by accident (Kubernetes does the same)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    raw = meta.get("managedFields") if isinstance(meta, dict) else None
    if not isinstance(raw, list) or not raw:
        return None
    out = []
    for item in raw:
        if not isinstance(item, dict) or item.get("operation") not in ("Apply", "Update"):
            return None
        fields = item.get("fieldsV1", {})
        text = str(item.get("time"))
        try:
            from_fields_v1(fields)
            when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except (FieldSetError, TypeError, ValueError):
            return None
        out.append(
            ManagedFieldsEntry(
                manager=str(item.get("manager", "")),
                operation=item["operation"],
                api_version=str(item.get("apiVersion", "")),
                time=when,
                fields_v1=json.dumps(fields, separators=(",", ":"), sort_keys=True),
                subresource=str(item.get("subresource", "")),
            )
        )
    return _sorted(out)


def _entry(manager: Manager, fields: FieldSet, now: float) -> ManagedFieldsEntry:
    return ManagedFieldsEntry(
        manager=manager.name,
        operation=manager.operation,
        api_version=manager.api_version,
        # Whole seconds, as the API shows them: a ledger sent back reads the same.
        time=float(int(now)),
        fields_v1=_encode(fields),
        subresource=manager.subresource,
    )


def _sorted(entries: list[ManagedFieldsEntry]) -> tuple[ManagedFieldsEntry, ...]:
    """Kubernetes' order: Apply before Update, then oldest first, then by name."""
    return tuple(
        sorted(
            entries,
            key=lambda e: (e.operation, int(e.time), e.manager, e.api_version, e.subresource),
        )
    )


def applied_object(
    entries: Sequence[ManagedFieldsEntry], live: Obj, config: Obj, kind: str, manager: Manager
) -> Obj:
    """The object an apply of `config` by `manager` asks for: `config` merged into `live`,
    less the fields `manager` applied last time and no longer applies (unless another
    manager owns them). FieldSetError when `config` does not fit the kind's lists."""
    shape = shape_of(kind)
    merged = merge(live, config, shape)
    previous = next((e for e in entries if manager.owns(e)), None)
    if previous is None:
        return dict(merged)
    applied = _strip(to_field_set(tracked(config), shape))
    owned: FieldSet = applied | _IDENTITY
    for e in entries:
        if e is not previous:
            owned |= entry_fields(e)
    return dict(prune(merged, entry_fields(previous), owned, shape))


def record(
    entries: Sequence[ManagedFieldsEntry],
    old: Obj | None,
    new: Obj,
    kind: str,
    manager: Manager,
    now: float,
    config: Obj | None = None,
    force: bool = False,
) -> tuple[ManagedFieldsEntry, ...]:
    """The ledger after `manager` turned `old` (None: created) into `new`, both rendered.

    An Update owns what it added or changed; an Apply owns `config`'s fields and
    raises FieldConflicts for values it changes that another manager owns (unless
    `force`, which takes them over). Fields that went leave every manager."""
    # A status write owns status fields; every other write the rest (as Kubernetes resets
    # status on the main resource and everything but status on /status).
    view, shape = (
        (tracked_status, STATUS_SHAPE)
        if manager.subresource == "status"
        else (tracked, shape_of(kind))
    )
    if old is None:
        changed, removed = _created_fields(view(new), shape, kind, view is tracked_status), _NONE
        if not entries and manager.operation == "Update":
            # A create with no ledger yet (every object the master makes): its manager owns
            # what it set, nobody else owns anything.
            return (_entry(manager, changed, now),) if changed else ()
    else:
        change = compare(view(old), view(new), shape)
        changed = _strip(change.added | change.modified)
        removed = _strip(change.removed)
    mine = next((e for e in entries if manager.owns(e)), None)
    conflicts: list[tuple[ManagedFieldsEntry, Path]] = []
    others: list[tuple[ManagedFieldsEntry, FieldSet]] = []
    for e in entries:
        if e is mine:
            continue
        fields = entry_fields(e)
        taken = fields & changed
        if manager.operation == "Apply" and not force:
            conflicts.extend((e, p) for p in _ordered(taken))
        others.append((e, fields - taken - removed))
    if conflicts and manager.name == UPGRADING_MANAGER and old is not None:
        allowed = _still_last_applied(old, shape)
        conflicts = [(e, p) for e, p in conflicts if p not in allowed]
    if conflicts:
        raise FieldConflicts([Conflict(describe(e), path_string(p)) for e, p in conflicts])
    if manager.operation == "Apply":
        own = _strip(to_field_set(tracked(config if config is not None else new), shape))
    else:
        own = ((entry_fields(mine) if mine is not None else frozenset()) - removed) | changed
    result = [
        e if fields == entry_fields(e) else replace(e, fields_v1=_encode(fields))
        for e, fields in others
        if fields
    ]
    if own:
        unchanged = mine is not None and not changed and not removed and own == entry_fields(mine)
        result.append(mine if unchanged and mine is not None else _entry(manager, own, now))
    return _sorted(_cap_updates(result))


# Kubernetes keeps at most this many Update entries; older ones merge into one per version.
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"


def _cap_updates(entries: list[ManagedFieldsEntry]) -> list[ManagedFieldsEntry]:
    """Merge the oldest Update entries, per API version, into an `ancient-changes` entry
    until at most MAX_UPDATE_MANAGERS remain (the API server's capManagersManager), so
    an object written by many one-off managers does not grow without end."""
    if len(entries) <= MAX_UPDATE_MANAGERS:
        return entries  # (nearly every write: too few to merge, nothing to sort)
    updates = sorted(
        (e for e in entries if e.operation == "Update"), key=lambda e: (int(e.time), e.manager)
    )
    excess = len(updates) - MAX_UPDATE_MANAGERS
    out = list(entries)
    first: dict[str, ManagedFieldsEntry] = {}
    for e in updates:
        if excess <= 0:
            break
        if e.api_version not in first:
            first[e.api_version] = e
            continue
        bucket = next(
            (x for x in out if x.manager == ANCIENT_CHANGES and x.operation == "Update"
             and x.api_version == e.api_version and not x.subresource),
            first[e.api_version],
        )  # fmt: skip
        if bucket is e:
            continue
        out.remove(bucket)
        out.remove(e)
        merged = entry_fields(bucket) | entry_fields(e)
        out.append(
            replace(bucket, manager=ANCIENT_CHANGES, time=e.time, fields_v1=_encode(merged),
                    subresource="")
        )  # fmt: skip
        excess -= 1
    return out


# Kubernetes lets kubectl's own server-side apply take over what its client-side apply
# set (the API server's lastAppliedManager): only for this manager name.
UPGRADING_MANAGER = "kubectl"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _still_last_applied(live: Obj, shape: Shape) -> FieldSet:
    """The fields of the client-side apply's last-applied configuration whose values the
    live object still has: an apply by `kubectl` may change them without a conflict."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        last = json.loads(text) if isinstance(text, str) else None
        if not isinstance(last, dict):
            return frozenset()
        fields = _strip(to_field_set(tracked(last), shape))
        drift = compare(tracked(last), tracked(live), shape)
    except (ValueError, FieldSetError):
        return frozenset()
    return fields - drift.modified - drift.removed


def _encode(fields: FieldSet) -> str:
    found = _TEXT_OF_FIELDS.get(fields)
    if found is None:
        found = json.dumps(to_fields_v1(fields), separators=(",", ":"), sort_keys=True)
        _remember(_TEXT_OF_FIELDS, fields, found)
    return found


def _ordered(paths: FieldSet) -> list[Path]:
    return sorted(paths, key=path_string)


_S = TypeVar("_S", bound=StoredObject)


def with_entries(obj: _S, entries: tuple[ManagedFieldsEntry, ...]) -> _S:
    """`obj` carrying `entries` as its managedFields."""
    return evolve(obj, meta=evolve(obj.meta, managed_fields=entries))
