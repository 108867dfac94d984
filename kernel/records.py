"""`NamedTuple`: typing.NamedTuple's class syntax without importing typing at run time.

`pinnace apply` is on the way to a running pod (issue 15: apply -> 3 running within 1.1x
of `docker run`), and its records (the credentials it reads, the request it sends) were
typing.NamedTuple classes: `import typing` was ~5 ms of the CLI's CPU before it could
send, on a start-up of ~60 ms. mypy reads typing's NamedTuple here (the TYPE_CHECKING
branch: the same checks, the same inference); at run time a class statement over this base
makes what typing's would, a collections.namedtuple with the annotated fields in order,
their defaults, and the class's docstring, methods and constants. typing also checks that
no field without a default follows one with a default; mypy checks that here.
"""

from collections import namedtuple

# mypy reads any constant named TYPE_CHECKING as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    # What typing's NamedTupleMeta leaves to collections.namedtuple (typing._special).
    _SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})

    class _RecordMeta(type):
        def __new__(mcs, name, bases, namespace):
            if not bases:  # the NamedTuple base below
                return super().__new__(mcs, name, bases, namespace)
            annotations = namespace.get("__annotations__", {})
            defaults = [namespace[field] for field in annotations if field in namespace]
            record = namedtuple(
                name, list(annotations), defaults=defaults, module=namespace["__module__"]
            )
            record.__annotations__ = dict(annotations)
            for key, value in namespace.items():
                if key not in _SPECIAL and key not in annotations:
                    setattr(record, key, value)
            return record

    class NamedTuple(metaclass=_RecordMeta):
        """Subclass it as typing.NamedTuple; the class statement returns a namedtuple."""
