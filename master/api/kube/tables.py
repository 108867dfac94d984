"""`as=Table` answers: the rows `kubectl get` prints, with the columns `pinnace get` prints.

The cells come from master/cli/tables.py, the module the CLI renders with, over
the same rendered objects, so both tools show the same columns and words.
Columns only `-o wide` shows have priority 1, which is how kubectl knows to hide
them otherwise. Each row carries the object's metadata (PartialObjectMetadata),
which kubectl uses for names, namespaces and `-w` updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from master.api.tables import has_table, header_for, human_age, rows_for

Obj = dict[str, Any]


def _partial(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def _generic_rows(objs: Sequence[Obj], now: float) -> tuple[list[Obj], list[list[Any]]]:
    columns = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "priority": 0,
            "description": "Name of the object.",
        },
        {
            "name": "Age",
            "type": "string",
            "format": "",
            "priority": 0,
            "description": "Time since creation.",
        },
    ]
    rows = []
    for o in objs:
        created = o.get("metadata", {}).get("creationTimestamp")
        age = "<unknown>"
        if created:
            born = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
            age = human_age(now - born)
        rows.append([o.get("metadata", {}).get("name", ""), age])
    return columns, rows


def _replica_set_rows(objs: Sequence[Obj], now: float) -> tuple[list[Obj], list[list[Any]]]:
    """kubectl's ReplicaSet columns: what `get rs` shows for a Deployment's revisions."""
    columns, named = _generic_rows(objs, now)
    counts = [
        {"name": n, "type": "integer", "format": "", "priority": 0, "description": n}
        for n in ("DESIRED", "CURRENT", "READY")
    ]
    rows = []
    for (name, age), o in zip(named, objs, strict=True):
        st = o.get("status", {})
        desired = o.get("spec", {}).get("replicas", 0)
        rows.append([name, desired, st.get("replicas", 0), st.get("readyReplicas", 0), age])
    return [columns[0], *counts, columns[1]], rows


def _lease_rows(objs: Sequence[Obj], now: float) -> tuple[list[Obj], list[list[Any]]]:
    """kubectl's Lease columns: NAME, HOLDER, AGE."""
    columns, named = _generic_rows(objs, now)
    holder = {"name": "Holder", "type": "string", "format": "", "priority": 0,
              "description": "The node holding the lease."}  # fmt: skip
    rows = [
        [name, o.get("spec", {}).get("holderIdentity", ""), age]
        for (name, age), o in zip(named, objs, strict=True)
    ]
    return [columns[0], holder, columns[1]], rows


def render_table(kind: str, objs: Sequence[Obj], now: float, resource_version: str) -> Obj:
    if has_table(kind):
        base = header_for(kind, wide=False)
        wide = header_for(kind, wide=True)
        # kubectl upper-cases column names when it prints them: pinnace's words survive.
        columns = [
            {
                "name": h,
                "type": "string",
                "format": "name" if h == "NAME" else "",
                "description": h,
                "priority": 0 if h in base else 1,
            }
            for h in wide
        ]
        cells = rows_for(kind, objs, wide=True, now=now)
    elif kind == "ReplicaSet":
        columns, cells = _replica_set_rows(objs, now)
    elif kind == "Lease":
        columns, cells = _lease_rows(objs, now)
    else:
        columns, cells = _generic_rows(objs, now)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": [{"cells": row, "object": _partial(o)} for row, o in zip(cells, objs, strict=True)],
    }


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
