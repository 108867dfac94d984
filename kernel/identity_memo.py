"""Answers remembered by the identity of their input (pure).

Frozen values that many callers share (a template's spec in the master's store codec,
an assigned container spec in the agent) are converted again and again: each encode,
each pass, each report. Remembering the answer by `id()` costs one dict lookup; the memo
keeps the input alive beside its answer, so an id is never another object's while it is
remembered, and it is emptied whole when it reaches its bound (what is still in use is
converted once more).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

A = TypeVar("A")
T = TypeVar("T")

IdentityMemo = dict[int, tuple[object, T]]


def by_identity(
    memo: IdentityMemo[T], key: object, make: Callable[[A], T], arg: A, limit: int
) -> T:
    """`make(arg)`, remembered in `memo` by the identity of `key` (emptied at `limit`)."""
    found = memo.get(id(key))
    if found is not None and found[0] is key:
        return found[1]
    out = make(arg)
    if len(memo) >= limit:
        memo.clear()
    memo[id(key)] = (key, out)
    return out
