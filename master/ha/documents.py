"""SharedDocuments: every master's copy of the documents all masters may change.

Join tokens and node bindings are metadata documents in the store
(master/pki/registry.py), changed by whichever master a client reached (a token
made on the leader, an agent joining through a follower). Each master keeps
them in memory to answer joins and authorise every call, so each watches
`<prefix>m/security.` — the leader too, which runs no Follower — and hands
every change to `take(key, value)`. The watch starts from the revision the
master loaded at start, so nothing written since is missed; if etcd compacted
that history away, the documents are read again (`reload`) and the watch
resumes from the present.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from master.store.etcd import EtcdStore
from master.store.etcd_lease import Compacted, EtcdLeases
from master.store.port import StoreError

log = logging.getLogger(__name__)

SHARED_PREFIX = "security."


class SharedDocuments:
    def __init__(
        self,
        store: EtcdStore,
        take: Callable[[str, str | None], None],
        reload: Callable[[], Awaitable[None]],
    ) -> None:
        self._store = store
        self._etcd = EtcdLeases(store.client)
        self._take = take
        self._reload = reload
        self.revision = store.revision

    async def run(self) -> None:
        prefix = self._store.meta_key(SHARED_PREFIX)
        while True:
            try:
                async for changes in self._etcd.watch(prefix, self.revision + 1):
                    for change in changes:
                        parsed = self._store.parse_key(change.key)
                        if parsed is not None and parsed[0] == "meta":
                            value = None if change.deleted else change.value.decode("utf-8")
                            self._take(parsed[1], value)
                        self.revision = max(self.revision, change.mod_revision)
            except Compacted as e:
                log.warning("shared documents: %s; reading them again", e)
                self.revision = await asyncio.to_thread(self._etcd.current_revision, prefix)
                await self._reload()
            except StoreError as e:
                log.info("shared documents: %s; resuming from revision %d", e, self.revision + 1)
                await asyncio.sleep(0.1)
