"""kernel/records.py: a class over its NamedTuple is what typing.NamedTuple's would be."""

from __future__ import annotations

import pickle
import subprocess
import sys
import typing

from kernel.records import NamedTuple
from tests.support import REPO


class Ours(NamedTuple):
    """A record."""

    name: str
    size: int = 0
    tags: tuple[str, ...] = ()

    def bigger(self) -> bool:
        return self.size > 3


class Typing(typing.NamedTuple):
    """A record."""

    name: str
    size: int = 0
    tags: tuple[str, ...] = ()

    def bigger(self) -> bool:
        return self.size > 3


def test_a_record_has_typing_s_fields_defaults_and_members() -> None:
    ours, theirs = Ours("a", 5), Typing("a", 5)

    assert Ours._fields == Typing._fields == ("name", "size", "tags")
    assert Ours._field_defaults == Typing._field_defaults == {"size": 0, "tags": ()}
    # typing wraps the (postponed) annotations in ForwardRefs; ours keeps their text.
    assert Ours.__annotations__ == {"name": "str", "size": "int", "tags": "tuple[str, ...]"}
    assert list(Typing.__annotations__) == list(Ours.__annotations__)
    assert tuple(ours) == tuple(theirs)
    assert tuple(ours) == ("a", 5, ())
    assert repr(ours) == repr(theirs).replace("Typing", "Ours")
    assert ours.bigger() and theirs.bigger() and not Ours("b").bigger()
    assert Ours.__doc__ == Typing.__doc__ == "A record."
    assert tuple(ours._replace(size=1)) == ("a", 1, ())
    assert Ours.__module__ == __name__ and Ours.__qualname__ == "Ours"
    assert pickle.loads(pickle.dumps(ours)) == ours
    assert isinstance(ours, tuple) and ours == Ours("a", 5)


def test_records_load_without_typing() -> None:
    probe = (
        "import sys\n"
        "from kernel.records import NamedTuple\n"
        "class R(NamedTuple):\n"
        "    x: int = 1\n"
        "print(R(), 'typing' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout

    assert out == "R(x=1) False\n"
