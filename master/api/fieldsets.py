"""Field sets of Kubernetes objects, as server-side apply computes them (pure).

Server-side apply records which manager owns which fields of an object. A field
is named by a path of elements, as in Kubernetes' structured-merge-diff:
`("f", name)` a field of a map, `("k", ((key, value), ...))` the item of an
associative list that carries those key values (containers by name, ports by
containerPort and protocol), `("v", value)` a member of a set-like list. A
field set is a frozenset of paths; in `metadata.managedFields` it is written as
FieldsV1 (`{"f:spec": {"f:replicas": {}}, ...}`, `".": {}` where the node itself
is a member as well as its children).

What a list or map means comes from a `Shape`: a struct (declared fields), a
granular map (any keys, each its own field), an associative list (items by
key), a set, or atomic (one value, owned whole). `shape_of_type` derives shapes
from master/manifest/schema.py, the model validation and OpenAPI share, so
merging follows the same merge keys the served schema tells kubectl about.

The operations mirror structured-merge-diff's: `to_field_set` (the fields an
applied configuration sets), `compare` (added / modified / removed between two
objects: what an update changed), `merge` (an applied configuration over the
live object) and `remove` (drop fields an applier no longer applies).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# A path element: ("f", field name) | ("k", ((key, value), ...)) | ("v", value).
Element = tuple[str, Any]
Path = tuple[Element, ...]
FieldSet = frozenset[Path]

Relation = Literal["struct", "map", "associative", "set", "atomic", "scalar"]


class FieldSetError(ValueError):
    """An object does not fit its shape (an associative list item without its key...)."""


@dataclass(frozen=True, slots=True)
class Shape:
    """How a value merges and how its fields are named.

    `fields` (struct) gives declared children; anything else under a struct or map
    has `element`'s shape. Associative lists name items by `keys` (a missing key
    takes its `key_defaults` value, as Kubernetes' schema defaults do)."""

    relation: Relation
    fields: Mapping[str, Shape] = field(default_factory=dict)
    element: Shape | None = None
    keys: tuple[str, ...] = ()
    key_defaults: Mapping[str, Any] = field(default_factory=dict)

    def child(self, name: str) -> Shape:
        found = self.fields.get(name)
        if found is not None:
            return found
        return self.element if self.element is not None else DEDUCED


SCALAR = Shape("scalar")
ATOMIC = Shape("atomic")
# What a value with no schema is: maps field by field, lists atomic (as for CRDs).
DEDUCED = Shape("struct")


def string_map() -> Shape:
    return Shape("map", element=SCALAR)


def associative(item: Shape, *keys: str, **key_defaults: Any) -> Shape:
    return Shape("associative", element=item, keys=keys, key_defaults=key_defaults)


def set_of_scalars() -> Shape:
    return Shape("set", element=SCALAR)


# -- paths ------------------------------------------------------------------------------


def f(name: str) -> Element:
    return ("f", name)


def k(**keys: Any) -> Element:
    return ("k", tuple(sorted(keys.items())))


def v(value: Any) -> Element:
    return ("v", value)


def path_string(path: Path) -> str:
    """Kubernetes' text for a path: `.spec.template.spec.containers[name="web"].image`."""
    out = []
    for kind, value in path:
        if kind == "f":
            out.append(f".{value}")
        elif kind == "k":
            out.append("[" + ",".join(f"{n}={_json(x)}" for n, x in value) + "]")
        else:
            out.append(f"[={_json(value)}]")
    return "".join(out)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def item_key(item: Any, shape: Shape) -> Element:
    """The path element of one item of an associative list (its key fields' values)."""
    if not isinstance(item, dict):
        raise FieldSetError(f"list items keyed by {', '.join(shape.keys)} must be maps")
    keys = shape.keys
    if len(keys) == 1:
        # One key (containers by name, conditions by type: most keyed lists), found as is:
        # the general loop's answer without its list and sort (every item of every compare).
        value = item.get(keys[0])
        if value is not None:
            return ("k", ((keys[0], value),))
    values = []
    for name in shape.keys:
        if name in item and item[name] is not None:
            values.append((name, item[name]))
        elif name in shape.key_defaults:
            values.append((name, shape.key_defaults[name]))
        else:
            raise FieldSetError(f"a list item is missing its key {name!r}")
    return ("k", tuple(sorted(values)))


def _items(value: Any, shape: Shape) -> dict[Element, Any]:
    """The items of a keyed or set list by path element (the first of duplicates wins)."""
    out: dict[Element, Any] = {}
    for item in value if isinstance(value, list) else []:
        pe = item_key(item, shape) if shape.relation == "associative" else v(_hashable(item))
        out.setdefault(pe, item)
    return out


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        raise FieldSetError("set members must be scalars")
    return value


def ancestors(paths: Iterable[Path]) -> FieldSet:
    """Every proper prefix of the given paths."""
    return frozenset(p[:i] for p in paths for i in range(1, len(p)))


# -- FieldsV1 -------------------------------------------------------------------------


def _element_text(pe: Element) -> str:
    kind, value = pe
    if kind == "f":
        return f"f:{value}"
    if kind == "k":
        return "k:" + _json(dict(value))
    return "v:" + _json(value)


def _element_of(text: str) -> Element:
    kind, _, rest = text.partition(":")
    if kind == "f" and rest:
        return ("f", rest)
    try:
        if kind == "k":
            keys = json.loads(rest)
            if isinstance(keys, dict) and keys:
                return ("k", tuple(sorted(keys.items())))
        elif kind == "v":
            return ("v", _hashable(json.loads(rest)))
    except (ValueError, FieldSetError):
        pass
    raise FieldSetError(f"{text[:80]!r} is not a FieldsV1 path element")


def _order(pe: Element) -> tuple[int, str]:
    return ("fkv".index(pe[0]), _element_text(pe))


def to_fields_v1(paths: FieldSet) -> dict[str, Any]:
    """The FieldsV1 form of a field set (as `metadata.managedFields[].fieldsV1`)."""
    tree: dict[Element, Any] = {}
    members: set[Path] = set(paths)
    for path in paths:
        node = tree
        for pe in path:
            node = node.setdefault(pe, {})

    def emit(node: dict[Element, Any], prefix: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pe in sorted(node, key=_order):
            path = (*prefix, pe)
            children = emit(node[pe], path)
            if children and path in members:
                children = {".": {}, **children}
            out[_element_text(pe)] = children
        return out

    return emit(tree, ())


def from_fields_v1(doc: Any) -> FieldSet:
    """The field set a FieldsV1 document describes; FieldSetError when it is malformed."""
    out: set[Path] = set()

    def walk(node: Any, prefix: Path) -> None:
        if not isinstance(node, dict):
            raise FieldSetError("FieldsV1 nodes must be maps")
        for text, child in node.items():
            if text == ".":
                if prefix:
                    out.add(prefix)
                continue
            path = (*prefix, _element_of(text))
            if not isinstance(child, dict):
                raise FieldSetError("FieldsV1 nodes must be maps")
            if not child:
                out.add(path)
            walk(child, path)

    walk(doc, ())
    return frozenset(out)


# -- the fields a value sets ----------------------------------------------------------


def _leaf_like(shape: Shape, value: Any) -> bool:
    if shape.relation in ("scalar", "atomic"):
        return True
    if shape.relation in ("struct", "map"):
        return not isinstance(value, dict)
    return not isinstance(value, list)


def to_field_set(value: Any, shape: Shape) -> FieldSet:
    """Every field `value` sets (structured-merge-diff's ToFieldSet): leaves, atomic
    values, list items (members themselves as well as their fields), empty or null
    map values, and the entries of granular maps."""
    out: set[Path] = set()

    def walk(value: Any, shape: Shape, path: Path) -> None:
        if _leaf_like(shape, value):
            if path:
                out.add(path)
            return
        if shape.relation in ("struct", "map"):
            for name, child in value.items():
                p = (*path, f(name))
                walk(child, shape.child(name), p)
                if child is None or child == {} or shape.relation == "map":
                    out.add(p)
            return
        element = shape.element or DEDUCED
        for pe, item in _items(value, shape).items():
            p = (*path, pe)
            out.add(p)
            if shape.relation == "associative":
                walk(item, element, p)

    walk(value, shape, ())
    return frozenset(out)


# -- comparing two objects ------------------------------------------------------------

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Comparison:
    added: FieldSet
    modified: FieldSet
    removed: FieldSet


_EMPTY: tuple[Any, ...] = (_MISSING, None, {}, [])
_LEAF_RELATIONS = frozenset({"scalar", "atomic"})
_MAPS = frozenset({"struct", "map"})


def compare(old: Any, new: Any, shape: Shape) -> Comparison:
    """What changed from `old` to `new`, field by field (structured-merge-diff's Compare).

    A map or list item that appears or disappears is itself added or removed as well
    as its fields; a struct's own fields are not (Kubernetes' structs always exist).

    Every write the master records runs this over the object (a status report over
    the pod's status, each event's count), so the walk is written for speed: an equal
    child is passed over without a call, a changed leaf recorded without one. The tests
    hold it to a plain recursive reference over random and real objects."""
    added: set[Path] = set()
    modified: set[Path] = set()
    removed: set[Path] = set()
    missing, empty = _MISSING, _EMPTY

    def walk(a: Any, b: Any, shape: Shape, path: Path, member: bool) -> None:
        # (The caller passed over equal values: nothing under them changed.)
        rel = shape.relation
        if rel in _LEAF_RELATIONS:
            leaf = True
        elif rel in _MAPS:
            leaf = (a is not missing and not isinstance(a, dict)) or (
                b is not missing and not isinstance(b, dict)
            )
        else:
            leaf = (a is not missing and not isinstance(a, list)) or (
                b is not missing and not isinstance(b, list)
            )
        if leaf or (a in empty and b in empty):
            if a is missing:
                added.add(path)
            elif b is missing:
                removed.add(path)
            elif a != b:
                modified.add(path)
            return
        if member:
            if a is missing:
                added.add(path)
                a = {} if rel in _MAPS else []
            elif b is missing:
                removed.add(path)
                b = {} if rel in _MAPS else []
        elif a is missing:
            a = {} if rel in _MAPS else []
        elif b is missing:
            b = {} if rel in _MAPS else []
        if rel in _MAPS:
            is_map = rel == "map"
            fields, element = shape.fields, shape.element or DEDUCED
            for name in a.keys() | b.keys() if len(a) != len(b) or a.keys() != b.keys() else a:
                x, y = a.get(name, missing), b.get(name, missing)
                if x is y or (x is not missing and y is not missing and x == y):
                    continue
                child = fields.get(name) or element
                crel = child.relation
                if crel in _LEAF_RELATIONS or (
                    crel in _MAPS
                    and (
                        (x is not missing and not isinstance(x, dict))
                        or (y is not missing and not isinstance(y, dict))
                    )
                ):
                    # A leaf (most changed fields are): recorded here, without a call.
                    p = (*path, ("f", name))
                    if x is missing:
                        added.add(p)
                    elif y is missing:
                        removed.add(p)
                    else:
                        modified.add(p)  # not equal: passed over above otherwise
                    continue
                walk(x, y, child, (*path, ("f", name)), is_map or crel == "map")
            return
        left_items, right_items = _items(a, shape), _items(b, shape)
        element = shape.element or DEDUCED
        for pe in {**left_items, **right_items}:
            x, y = left_items.get(pe, missing), right_items.get(pe, missing)
            if rel != "set":
                if x is y or (x is not missing and y is not missing and x == y):
                    continue
                walk(x, y, element, (*path, pe), True)
            elif x is missing:
                added.add((*path, pe))
            elif y is missing:
                removed.add((*path, pe))

    if not (old is new or (old is not missing and new is not missing and old == new)):
        walk(old, new, shape, (), False)
    return Comparison(frozenset(added), frozenset(modified), frozenset(removed))


# -- merging an applied configuration ---------------------------------------------------


def merge(live: Any, config: Any, shape: Shape) -> Any:
    """`config` applied over `live`: maps field by field, associative lists item by
    key (the configuration's order for the items it names, the live object's other
    items where they were), sets as unions, anything else replaced."""
    if live is _MISSING or live is None or _leaf_like(shape, config) or _leaf_like(shape, live):
        return _copy(config)
    if shape.relation in ("struct", "map"):
        out = {name: _copy(value) for name, value in live.items()}
        for name, value in config.items():
            if value is None:
                out.pop(name, None)
            else:
                out[name] = merge(live.get(name, _MISSING), value, shape.child(name))
        return out
    live_items, config_items = _items(live, shape), _items(config, shape)
    element = shape.element or DEDUCED
    ordered: list[Element] = []
    pending = [pe for pe in config_items]
    for pe in live_items:
        if pe not in config_items:
            ordered.append(pe)
            continue
        while pending:
            next_pe = pending.pop(0)
            ordered.append(next_pe)
            if next_pe == pe:
                break
    ordered.extend(pending)
    out_items = []
    for pe in ordered:
        if pe not in config_items:
            out_items.append(_copy(live_items[pe]))
        elif shape.relation == "set":
            out_items.append(_copy(config_items[pe]))
        else:
            out_items.append(merge(live_items.get(pe, _MISSING), config_items[pe], element))
    return out_items


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k_: _copy(x) for k_, x in value.items()}
    if isinstance(value, list):
        return [_copy(x) for x in value]
    return value


# -- removing fields ------------------------------------------------------------------


def remove(value: Any, paths: Iterable[Path], shape: Shape) -> Any:
    """`value` without the fields at `paths` (each with everything under it)."""
    out = _copy(value)
    for path in sorted(paths, key=len):
        _remove_one(out, path, shape)
    return out


def _remove_one(node: Any, path: Path, shape: Shape) -> None:
    for i, (kind, name) in enumerate(path):
        last = i == len(path) - 1
        if kind == "f":
            if not isinstance(node, dict) or name not in node:
                return
            if last:
                del node[name]
                return
            node, shape = node[name], shape.child(name)
            continue
        if not isinstance(node, list) or shape.relation not in ("associative", "set"):
            return
        wanted: Element = (kind, name)
        index = next(
            (j for j, item in enumerate(node) if _element_of_item(item, shape) == wanted), None
        )
        if index is None:
            return
        if last:
            del node[index]
            return
        node, shape = node[index], shape.element or DEDUCED


def _element_of_item(item: Any, shape: Shape) -> Element | None:
    """The path element naming one list item (None when it has no valid key)."""
    try:
        return item_key(item, shape) if shape.relation == "associative" else v(_hashable(item))
    except FieldSetError:
        return None


def prune(merged: Any, last_applied: FieldSet, owned: FieldSet, shape: Shape) -> Any:
    """`merged` without what an applier applied last time and applies no more.

    A field (with everything under it) goes when it was in the applier's previous
    set, or is a field the previous set reached into, and no manager (the applier's
    new set included, in `owned`) owns it or anything under it."""
    kept = owned | ancestors(owned)
    candidates = last_applied | frozenset(
        p for p in ancestors(last_applied) if p[-1][0] == "f" or p in last_applied
    )
    gone = [p for p in candidates if p not in kept and not _key_of_kept_item(p, kept)]
    # Removing a field removes what is under it: only the outermost need removing.
    gone_set = set(gone)
    outermost = [p for p in gone if not any(p[:i] in gone_set for i in range(1, len(p)))]
    return remove(merged, outermost, shape)


def _key_of_kept_item(path: Path, kept: FieldSet) -> bool:
    """A key field of a list item that stays: the item cannot lose its name."""
    if len(path) < 2 or path[-1][0] != "f" or path[-2][0] != "k" or path[:-1] not in kept:
        return False
    return path[-1][1] in {name for name, _ in path[-2][1]}
