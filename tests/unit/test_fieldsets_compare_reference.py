"""fieldsets.compare against a plain recursive reference, over random and real objects.

compare is written for speed (equal children passed over without a call, the
leaf tests inline): every write the master records runs it. The reference below
is the straightforward walk it replaced; any difference in what they call added,
modified or removed, on values that fit their shape or not, fails here.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from master.api.fieldsets import (
    ATOMIC,
    DEDUCED,
    SCALAR,
    Comparison,
    FieldSetError,
    Path,
    Shape,
    _items,
    _leaf_like,
    associative,
    compare,
    item_key,
    set_of_scalars,
    string_map,
)
from master.api.managedfields import STATUS_SHAPE, shape_of, tracked, tracked_status
from master.api.render import render_object
from master.model import (
    Container,
    ContainerPort,
    ContainerStatus,
    Event,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
)

_MISSING: Any = object()


def reference_compare(old: Any, new: Any, shape: Shape) -> Comparison:
    added: set[Path] = set()
    modified: set[Path] = set()
    removed: set[Path] = set()

    def leaf(a: Any, b: Any, path: Path) -> None:
        if a is _MISSING:
            added.add(path)
        elif b is _MISSING:
            removed.add(path)
        elif a != b:
            modified.add(path)

    def walk(a: Any, b: Any, shape: Shape, path: Path, member: bool) -> None:
        if a is b or (a is not _MISSING and b is not _MISSING and a == b):
            return
        empty: tuple[Any, ...] = (_MISSING, None, {}, [])
        if (
            (a in empty and b in empty)
            or (a is not _MISSING and _leaf_like(shape, a))
            or (b is not _MISSING and _leaf_like(shape, b))
        ):
            leaf(a, b, path)
            return
        if member and (a is _MISSING or b is _MISSING):
            leaf(a, b, path)
        if shape.relation in ("struct", "map"):
            left = a if a is not _MISSING else {}
            right = b if b is not _MISSING else {}
            for name in {**left, **right}:
                child = shape.child(name)
                walk(
                    left.get(name, _MISSING),
                    right.get(name, _MISSING),
                    child,
                    (*path, ("f", name)),
                    shape.relation == "map" or child.relation == "map",
                )
            return
        left_items = _items(a, shape) if a is not _MISSING else {}
        right_items = _items(b, shape) if b is not _MISSING else {}
        for pe in {**left_items, **right_items}:
            x, y = left_items.get(pe, _MISSING), right_items.get(pe, _MISSING)
            if shape.relation != "set":
                walk(x, y, shape.element or DEDUCED, (*path, pe), True)
            elif x is _MISSING or y is _MISSING:
                leaf(x, y, (*path, pe))

    walk(old, new, shape, (), False)
    return Comparison(frozenset(added), frozenset(modified), frozenset(removed))


ITEM = Shape("struct", fields={"name": SCALAR, "value": SCALAR, "sub": string_map()})
SHAPE = Shape(
    "struct",
    fields={
        "labels": string_map(),
        "items": associative(ITEM, "name"),
        "ports": associative(ITEM, "name", "value", value="TCP"),
        "tags": set_of_scalars(),
        "selector": ATOMIC,
        "nested": Shape("struct", fields={"deep": Shape("struct", fields={"x": SCALAR})}),
    },
)
_SCALARS: list[Any] = [None, 0, 1, "", "a", "b", True, False, 1.5, {}, []]


def _value(rng: random.Random, shape: Shape, depth: int) -> Any:
    if depth > 4 or rng.random() < 0.1:
        return rng.choice(_SCALARS)
    if shape.relation in ("struct", "map"):
        names = list(shape.fields) or ["p", "q", "r"]
        return {
            name: _value(rng, shape.child(name), depth + 1)
            for name in rng.sample(names, rng.randint(0, len(names)))
        }
    if shape.relation == "associative":
        return [
            {"name": rng.choice("abc"), "value": rng.choice(["1", "TCP", None]), "sub": {"k": "v"}}
            for _ in range(rng.randint(0, 3))
        ]
    if shape.relation == "set":
        return rng.sample(["x", "y", "z", 1], rng.randint(0, 3))
    return rng.choice(_SCALARS)


def _mutated(rng: random.Random, value: Any, shape: Shape, depth: int = 0) -> Any:
    """`value` with a few random changes (most of it, and its identity in places, kept)."""
    roll = rng.random()
    if roll < 0.15:
        return _value(rng, shape, depth)
    if isinstance(value, dict) and shape.relation in ("struct", "map"):
        out = {}
        for name, child in value.items():
            if rng.random() < 0.1:
                continue
            keep = rng.random() < 0.5
            out[name] = child if keep else _mutated(rng, child, shape.child(name), depth + 1)
        if rng.random() < 0.3:
            name = rng.choice(list(shape.fields) or ["p", "s"])
            out[name] = _value(rng, shape.child(name), depth + 1)
        return out
    if isinstance(value, list) and roll < 0.6:
        return [rng.choice([x, dict(x, value="2") if isinstance(x, dict) else x]) for x in value]
    return value


@pytest.mark.parametrize("seed", range(40))
def test_compare_equals_the_reference_on_random_values(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        old = _value(rng, SHAPE, 0)
        new = _mutated(rng, old, SHAPE)
        for a, b in ((old, new), (new, old), ({}, new), (old, {}), (old, old)):
            try:
                expected = reference_compare(a, b, SHAPE)
            except Exception as e:  # the same refusal is expected of both
                with pytest.raises(type(e)):
                    compare(a, b, SHAPE)
                continue
            assert compare(a, b, SHAPE) == expected, (a, b)


def _pod(status: PodStatus, node: str = "") -> Pod:
    spec = PodSpec(containers=(Container(name="c", image="nginx", ports=(ContainerPort(80),)),))
    return Pod(ObjectMeta(name="web-1", labels={"app": "web"}), spec, node_name=node, status=status)


def test_compare_equals_the_reference_on_a_pod_and_an_event_as_the_master_writes_them() -> None:
    created = _pod(PodStatus())
    bound = _pod(PodStatus(reason="ContainerCreating"), node="n1")
    running = _pod(
        PodStatus(
            phase=PodPhase.RUNNING,
            host_ip="10.0.0.1",
            ready=True,
            started_at=1_800_000_000.0,
            port_map={"80/TCP": 30000},
            container_statuses=(
                ContainerStatus(name="c", state="running", ready=True, image="nginx"),
            ),
        ),
        node="n1",
    )
    views = [render_object(p, 0.0) for p in (created, bound, running)]
    pod_shape = shape_of("Pod")
    event = Event(ObjectMeta(name="e"), "Deployment", "web", "SuccessfulCreate", "Created pod")
    folded = Event(
        ObjectMeta(name="e"), "Deployment", "web", "SuccessfulCreate", "(combined) x", count=2
    )
    pairs = [(tracked(a), tracked(b), pod_shape) for a in views for b in views] + [
        (tracked_status(a), tracked_status(b), STATUS_SHAPE) for a in views for b in views
    ]
    ev_shape = shape_of("Event")
    rendered = [tracked(render_object(e, 0.0)) for e in (event, folded)]
    pairs += [(a, b, ev_shape) for a in rendered for b in rendered] + [({}, rendered[0], ev_shape)]
    changed = 0
    for a, b, shape in pairs:
        result = compare(a, b, shape)
        assert result == reference_compare(a, b, shape)
        changed += bool(result.added or result.modified or result.removed)
    assert changed >= 10  # the pairs do differ: the walk ran, not only the equality test


def _reference_item_key(item: dict[str, Any], shape: Shape) -> Any:
    values = []
    for name in shape.keys:
        if name in item and item[name] is not None:
            values.append((name, item[name]))
        elif name in shape.key_defaults:
            values.append((name, shape.key_defaults[name]))
        else:
            raise FieldSetError(f"a list item is missing its key {name!r}")
    return ("k", tuple(sorted(values)))


@pytest.mark.parametrize(
    "shape",
    [
        associative(ITEM, "name"),
        associative(ITEM, "name", name="default"),
        associative(ITEM, "value", "name", value="TCP"),
    ],
)
def test_an_items_key_equals_the_reference(shape: Shape) -> None:
    for item in ({"name": "a"}, {"name": 0}, {"name": None}, {}, {"value": "UDP", "name": "b"}):
        try:
            expected = _reference_item_key(item, shape)
        except FieldSetError:
            with pytest.raises(FieldSetError, match="missing its key"):
                item_key(item, shape)
            continue
        assert item_key(item, shape) == expected
