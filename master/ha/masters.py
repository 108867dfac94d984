"""`pinnace get masters`: the masters of a cluster, Kubernetes-shaped.

A master with --leader-elect keeps an entry under `<prefix>masters/<name>` on
its lease (elector.py): the list of live leases is the list of masters, and the
leader key says which one leads. A master without --leader-elect is the only
one and leads. `render_master` is pure; `MastersView` reads etcd at the edge.
"""

from __future__ import annotations

import asyncio
from typing import Any

from master.api.render import rfc3339
from master.ha.elector import MasterInfo
from master.store.etcd import EtcdStore
from master.store.etcd_lease import EtcdLeases

Obj = dict[str, Any]


def render_master(info: MasterInfo, leader: bool) -> Obj:
    return {
        "apiVersion": "pinnace.io/v1",
        "kind": "Master",
        "metadata": {"name": info.name, "creationTimestamp": rfc3339(info.started_at)},
        "spec": {"address": info.address},
        "status": {"leader": leader, "role": "leader" if leader else "follower"},
    }


def render_masters(masters: list[MasterInfo], leader: str | None) -> list[Obj]:
    """Sorted by name; exactly the one named `leader` (if any) has status.leader."""
    return [render_master(m, m.name == leader) for m in sorted(masters, key=lambda m: m.name)]


class MastersView:
    """What `get masters` shows: etcd's list under --leader-elect, else this master alone.
    `me` is set once the master knows its address (after it starts listening)."""

    def __init__(self, store: EtcdStore | None) -> None:
        self._etcd = EtcdLeases(store.client) if store is not None else None
        self._prefix = store.prefix if store is not None else b""
        self.me: MasterInfo | None = None

    async def list_masters(self) -> list[Obj]:
        if self._etcd is not None:
            return await asyncio.to_thread(self._read, self._etcd)
        return render_masters([self.me], self.me.name) if self.me is not None else []

    def _read(self, etcd: EtcdLeases) -> list[Obj]:
        entries = etcd.list_prefix(self._prefix + b"masters/")
        held = etcd.held(self._prefix + b"leader")
        leader = MasterInfo.decode(held.value) if held.create_revision else None
        masters = [m for _, value in entries if (m := MasterInfo.decode(value)) is not None]
        return render_masters(masters, leader.name if leader else None)
