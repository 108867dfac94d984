"""The service table kept up to date by each change: what a change of one pod costs is that
pod's share, not a walk of every pod.

`compute_service_table` (master/lb/servicetable.py) reads every pod for every Service; the
feed that sends the table to the agents (master/api/servicetable.py) ran it up to once a
second while pods changed, and at 10,000 pods with ten Services one run took ~60 ms of
the event loop (5 x that at 50,000). Here the Services' members and their endpoints are
kept by master/lb/shares.py (a pod's share: its TableEndpoint per service port), and a
Service's table entry is assembled again only when its version moved.

`table()` equals `compute_service_table` over the same state at any moment
(tests/unit/test_service_table_index.py checks it over random sequences of changes).
"""

from __future__ import annotations

from collections.abc import Iterable

from master.lb.servicetable import TableEndpoint, TableService, table_endpoint, table_service
from master.lb.shares import Lookups, ServiceShares, item
from master.model import Pod, Service, StatefulSet, StoredObject, key_of

__all__ = ["Lookups", "ServiceTableIndex"]


def _share(
    svc: Service, pod: Pod, serving: bool, subdomain: str
) -> tuple[TableEndpoint | None, ...] | None:
    """The pod's endpoints in `svc`, one per service port; None when it gives none (as
    compute_service_table's `_endpoints` decides)."""
    found = [
        table_endpoint(pod, sp.target_port, serving, subdomain, svc.publish_not_ready)
        for sp in svc.ports
    ]
    return tuple(found) if any(e is not None for e in found) else None


class ServiceTableIndex:
    """The table, moved by each change; see the module docstring."""

    def __init__(
        self,
        services: Iterable[Service],
        statefulsets: Iterable[StatefulSet],
        lookups: Lookups,
    ) -> None:
        self._shares = ServiceShares(services, statefulsets, lookups, _share)
        # Service key -> (its version, its table entry then).
        self._entries: dict[str, tuple[int, TableService]] = {}
        self._table: tuple[int, tuple[TableService, ...]] | None = None

    def on_change(self, obj: StoredObject, deleted: bool, previous: StoredObject | None) -> bool:
        """One object stored or removed; whether the table may have changed."""
        return self._shares.on_change(obj, deleted, previous)

    def table(self) -> tuple[TableService, ...]:
        """Every Service's entry, sorted by (namespace, name): compute_service_table's."""
        shares = self._shares
        if self._table is None or self._table[0] != shares.changes:
            by_name = sorted(
                shares.services.values(), key=lambda s: (s.meta.namespace, s.meta.name)
            )
            self._table = (shares.changes, tuple(self._entry(key_of(s)) for s in by_name))
            if len(self._entries) > len(by_name):
                self._entries = {k: v for k, v in self._entries.items() if k in shares.services}
        return self._table[1]

    def _entry(self, key: str) -> TableService:
        version = self._shares.version(key)
        held = self._entries.get(key)
        if held is not None and held[0] == version:
            return held[1]
        svc = self._shares.services[key]
        shares = self._shares.shares(key)
        entry = table_service(
            svc,
            [
                tuple(e for s in shares if (e := item(s, i)) is not None)
                for i in range(len(svc.ports))
            ],
        )
        self._entries[key] = (version, entry)
        return entry
