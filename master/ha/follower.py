"""Follower: keeps a non-leading master's memory equal to etcd by watching the store.

The leader writes; every other master watches `<prefix>` from the revision its
memory reflects and applies each change to ClusterState (apply_remote /
remove_remote / observe_resource_version), which tells its subscribers (watch
streams, the load balancer) as if the change were local. Each change also goes
to EtcdStore.observe, so when this master takes over, its writes compare
against the revisions it has seen.

A watch resumes after a member fails, from the last revision applied, on the
next endpoint: nothing is missed. If etcd has compacted that revision away the
follower reloads everything (`resync`), as it does after being deposed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from master.model import StoredObject
from master.state import ClusterState
from master.store.etcd import EtcdStore
from master.store.etcd_lease import Change, Compacted, EtcdLeases
from master.store.port import StoreError

log = logging.getLogger(__name__)


class Follower:
    """Mirror etcd into ClusterState; see the module docstring."""

    def __init__(
        self,
        store: EtcdStore,
        state: ClusterState,
        load_all: Callable[[], list[StoredObject]] | None = None,
        opened: Callable[[StoredObject], StoredObject] | None = None,
    ) -> None:
        self._store = store
        self._state = state
        # The master's store may wrap etcd (SealingStore): read and open through it.
        self._load_all = load_all or store.load_all
        self._opened = opened or (lambda obj: obj)
        self._etcd = EtcdLeases(store.client)
        self.revision = store.revision  # every change up to here is in memory

    async def resync(self) -> None:
        """Reload everything from etcd into memory (a takeover, a deposition, a compaction)."""
        objects = await asyncio.to_thread(self._load_all)
        rv = await asyncio.to_thread(self._store.meta_get, "resource_version")
        self._state.replace_all(objects, int(rv) if rv and rv.isdigit() else 0)
        self.revision = self._store.revision

    async def run(self, resync_first: bool = False) -> None:
        need_resync = resync_first
        while True:
            try:
                if need_resync:
                    await self.resync()
                    need_resync = False
                async for changes in self._etcd.watch(self._store.prefix, self.revision + 1):
                    for change in changes:
                        self._apply(change)
            except Compacted as e:
                log.warning("follower: %s; reloading", e)
                need_resync = True
            except StoreError as e:
                log.info("follower: %s; resuming from revision %d", e, self.revision + 1)
                await asyncio.sleep(0.1)

    def _apply(self, change: Change) -> None:
        parsed = self._store.parse_key(change.key)
        if parsed is not None:
            self._store.observe(change.key, 0 if change.deleted else change.mod_revision)
            what, a, b = parsed
            if what == "object":
                if change.deleted:
                    self._state.remove_remote(a, b)
                else:
                    obj = self._store.decode_object(change.key, change.value)
                    if obj is not None:
                        self._apply_object(obj)
            elif what == "meta" and a == "resource_version" and not change.deleted:
                value = change.value.decode(errors="replace")
                if value.isdigit():
                    self._state.observe_resource_version(int(value))
        self.revision = max(self.revision, change.mod_revision)

    def _apply_object(self, obj: StoredObject) -> None:
        try:
            obj = self._opened(obj)
        except StoreError as e:
            # e.g. a Secret sealed with another master's key: skip it, say so, go on.
            log.error("follower: cannot take %s/%s: %s", obj.kind, obj.meta.name, e)
            return
        self._state.apply_remote(obj)
