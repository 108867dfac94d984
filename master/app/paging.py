"""Pages of a list reply, and the size check of an unpaged one (pure).

One gRPC message has a size limit, and a list of large objects (400 pods of a
200 KB template) can exceed any limit a legal cluster should fit in. A client
that asks for pages gets replies of at most `budget` bytes each (always at
least one object, so every object can be read), with a continue token naming
where the next page starts, as Kubernetes' list `continue` does. A client that
does not ask for pages gets one reply, checked against the limit before it is
sent: too big is refused with a sentence that says what to do, instead of a
transport error about "the request".

Tokens for lists sorted by name resume after the last name sent, so objects
created or deleted meanwhile shift nothing; events keep their time order and
resume at an index.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence

from master.app.errors import AppError

# One page's objects, in bytes of JSON: far below any message limit.
PAGE_BYTES = 4 * 1024 * 1024
MIB = 1024 * 1024


def next_page(
    names: Sequence[str], size_of: Callable[[int], int], token: str, budget: int = PAGE_BYTES
) -> tuple[int, int, str]:
    """(start, end, next token) of the page `token` asks for.

    `size_of(i)` is item i's size in bytes, asked only for the items of this
    page. Lists sorted by name take name tokens ("n:<last name sent>"), others
    index tokens ("i:<next index>"); the next token is empty on the last page.
    """
    by_name = all(a < b for a, b in itertools.pairwise(names))
    start = _start(names, token)
    end, used = start, 0
    while end < len(names):
        size = size_of(end)
        if end > start and used + size > budget:
            break
        used += size
        end += 1
    if end >= len(names):
        return start, end, ""
    return start, end, f"n:{names[end - 1]}" if by_name else f"i:{end}"


def _start(names: Sequence[str], token: str) -> int:
    if not token:
        return 0
    kind, _, value = token.partition(":")
    if kind == "n":
        return bisect.bisect_right(names, value)
    if kind == "i" and value.isdigit():
        return min(int(value), len(names))
    raise AppError("invalid", f"continue token {token[:80]!r} is not valid; list from the start")


def check_reply_size(size: int, limit: int, what: str) -> None:
    """Refuse an unpaged reply that could not be sent."""
    if size > limit:
        raise AppError(
            "resource_exhausted",
            f"the list of {what} is {size / MIB:.1f} MiB, more than the {limit / MIB:g} MiB one "
            f"reply may carry; list it in pages (pinnace get does), or narrow it with a name "
            f"or a label selector (-l)",
        )
