"""Lists of many objects without holding the event loop: a cache of rendered objects, and
rendering in chunks with a yield between them.

Why: `GET /api/v1/nodes` at 1,000 nodes rendered 1,000 objects to dicts and encoded
them to JSON in one synchronous stretch, 70-90 ms during which the master answered no
heartbeat and no other request. Two things make that unnecessary:

- A stored object never changes: a change stores a new object. For the kinds whose API
  form is a function of the stored object alone (`SELF_CONTAINED`: no time, no other
  object is read), the rendered dict and its JSON bytes are kept beside the object they
  came from and reused while the state still holds that very object (identity, not
  equality). Nodes are such a kind and heartbeats do not replace them (the lease table
  keeps the beats), so a list of 1,000 nodes at steady state is 1,000 look-ups and one
  `bytes.join`. An object with owner references is never cached (its rendering reads
  the owner's uid).
- What must be rendered (a cache miss, or a kind such as Pod whose form reads the time
  or other objects) is rendered `CHUNK` objects at a time, and the list yields to the
  loop between chunks, so a heartbeat waits for one chunk at most, not the whole list.

The answer stays one snapshot: the objects and the resourceVersion are taken from the
state before the first yield, and only those objects are rendered; what changes during
the yields is the next list's (or the watch's, from that resourceVersion).
`encode_list` builds the body from the objects' bytes; it is byte for byte what
`json.dumps` of the whole list would give.

State flow: KubeApi._list -> `render_listed(objs, render, cache)` (async: yields) ->
selection and pages over (dict, bytes) pairs -> `encode_list(head, bytes)`, or for
kubectl's Table form `encode_table(dicts, render_table)` (async: yields).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from master.model import StoredObject

Obj = dict[str, Any]

# Objects rendered between two yields to the loop: ~3 ms of CPU for nodes on this machine.
CHUNK = 100

# Kinds whose API form (master/api/kube/objects.render) reads nothing but the object,
# when it has no owner references.
SELF_CONTAINED = frozenset(
    {"Node", "Namespace", "Service", "Deployment", "StatefulSet", "ConfigMap", "Ingress"}
)

_SEPARATORS = (",", ":")


def encode(obj: Obj) -> bytes:
    """One object as the list's body holds it (compact JSON, as json_response writes)."""
    return json.dumps(obj, separators=_SEPARATORS).encode()


def encode_list(head: Obj, items: Sequence[bytes], key: str = "items") -> bytes:
    """`json.dumps({**head, key: [...]})` from the items' own bytes (the list last)."""
    opening = json.dumps(head, separators=_SEPARATORS).encode()
    name = json.dumps(key).encode()
    prefix = opening[:-1] + (b"," if len(opening) > 2 else b"") + name + b":["
    return prefix + b",".join(items) + b"]}"


async def encode_table(
    items: Sequence[Obj], table_of: Callable[[Sequence[Obj]], Obj], chunk: int = CHUNK
) -> bytes:
    """`json.dumps(table_of(items))` for a Table whose rows are one per item and come last
    (master/api/kube/tables.render_table): built `chunk` items at a time, with a yield to
    the loop between chunks."""
    head = table_of(())
    del head["rows"]
    rows: list[bytes] = []
    for at in range(0, len(items), chunk):
        if at:
            await asyncio.sleep(0)
        rows.extend(encode(row) for row in table_of(items[at : at + chunk])["rows"])
    return encode_list(head, rows, "rows")


class RenderedCache:
    """The rendered dict and JSON of each cacheable object, valid while it is the same object.

    Entries are keyed by (kind, namespace, name); `prune` drops those of objects a full
    list of the kind no longer saw (deleted). Callers must not modify the dicts."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[tuple[str, str], tuple[StoredObject, Obj, bytes]]] = {}

    def get(self, obj: StoredObject) -> tuple[Obj, bytes] | None:
        found = self._entries.get(obj.kind, {}).get((obj.meta.namespace, obj.meta.name))
        if found is None or found[0] is not obj:
            return None
        return found[1], found[2]

    def put(self, obj: StoredObject, rendered: Obj, encoded: bytes) -> None:
        if obj.kind not in SELF_CONTAINED or rendered.get("metadata", {}).get("ownerReferences"):
            return
        kind = self._entries.setdefault(obj.kind, {})
        kind[(obj.meta.namespace, obj.meta.name)] = (obj, rendered, encoded)

    def prune(self, kind: str, listed: Sequence[StoredObject]) -> None:
        """Keep only the entries of `listed`: every object of `kind` there is."""
        entries = self._entries.get(kind)
        if entries:
            alive = {(o.meta.namespace, o.meta.name) for o in listed}
            for key in [k for k in entries if k not in alive]:
                del entries[key]

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())


async def render_listed(
    objs: Sequence[StoredObject],
    render: Callable[[StoredObject], Obj],
    cache: RenderedCache,
    chunk: int = CHUNK,
) -> tuple[list[Obj], list[bytes]]:
    """Every object rendered and encoded, in order; cached ones reused, the others
    rendered `chunk` at a time with a yield to the loop after each chunk."""
    rendered: list[Obj] = []
    encoded: list[bytes] = []
    since_yield = 0
    for obj in objs:
        found = cache.get(obj)
        if found is None:
            if since_yield >= chunk:
                await asyncio.sleep(0)
                since_yield = 0
            out = render(obj)
            data = encode(out)
            cache.put(obj, out, data)
            found = out, data
            since_yield += 1
        rendered.append(found[0])
        encoded.append(found[1])
    return rendered, encoded
