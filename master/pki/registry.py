"""SecurityRegistry: join tokens and node-name bindings, kept in the store's meta table.

Both sets are small (a few tokens; one binding per node) and change rarely (a
token create/revoke, a join, a node deletion), so each is one JSON document
under one meta key, rewritten whole on change in its own transaction. They are
not model kinds on purpose: nothing about them belongs in `get`, `watch` or the
controllers, and a secret-bearing kind must never be served by the cluster API.

State flow: `load()` at master start reads both documents into memory; reads
are served from memory; every change updates memory, then persists before the
call that caused it answers (so an acknowledged token survives a crash). A
change is computed on a copy, saved, and only then made the in-memory truth: a
failed save leaves memory exactly as before, so the caller gets the error and a
retry does the whole change again. Changes are serialised by one asyncio lock.
A Node deleted from the cluster state drops its binding (a state listener
schedules the write).

Several masters on one etcd share both documents: any of them may change one
(a join through a follower, a token made on the leader). So a change starts
from the document as stored now (re-read), and its save is a compare-and-set
(the store's meta_set): when another master changed it in between
(WriteConflict) the change is decided again on the newer document. Other
masters' changes reach memory through `take` (master/ha/documents.py watches
them).

Joins at scale: a join binds its node and counts its token's use, and each of
those was a read, a rewrite of the whole document and an fsync under the lock,
one join after another. 1,000 agents joining at once queued behind that lock
past their 15 s deadline, retried, and queued again (56 of 1,000 had joined
after 150 s). So binds and use counts are coalesced: a change waiting for the
lock joins the next batch, and one batch is one read, one rewrite and one save
per document, however many joins it carries (group commit, as the state's
flushes). A document read back unchanged is not parsed again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from kernel.clock import Clock
from master.model import Node, StoredObject
from master.pki.identities import NodeBinding
from master.pki.tokens import (
    MAX_TOKENS,
    JoinToken,
    TokenRecord,
    check_token,
    generate_token,
    prune,
    record_use,
)
from master.state import ClusterState
from master.store.port import Store, WriteConflict

log = logging.getLogger(__name__)

TOKENS_KEY = "security.join_tokens"
BINDINGS_KEY = "security.node_bindings"
# A change another master keeps beating is refused after this many tries.
_CONFLICT_ATTEMPTS = 5

R = TypeVar("R")
# One coalesced change: edits a copy of the tokens or bindings document in place.
_Edit = Callable[[dict[str, Any]], None]


class RegistryError(Exception):
    """A request the registry refuses; the message is one sentence for the user."""


class SecurityRegistry:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._tokens: dict[str, TokenRecord] = {}
        self._bindings: dict[str, NodeBinding] = {}
        # Each binding's JSON text, as saved (_bindings_document).
        self._encoded: dict[NodeBinding, str] = {}
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        # The document text memory was last taken from, per key (unchanged: no re-parse).
        self._raw: dict[str, str | None] = {}
        # Coalesced changes waiting for the next batch, per key, and the batch's writer.
        self._queued: dict[str, list[tuple[_Edit, asyncio.Future[None]]]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def load(self) -> None:
        tokens = await asyncio.to_thread(self._store.meta_get, TOKENS_KEY)
        bindings = await asyncio.to_thread(self._store.meta_get, BINDINGS_KEY)
        self.take(TOKENS_KEY, tokens)
        self.take(BINDINGS_KEY, bindings)

    def take(self, key: str, document: str | None) -> None:
        """A document as stored (by this master at load, or by another master, seen by the
        follower's watch): make it the in-memory truth. Other keys are not ours."""
        if key in self._raw and self._raw[key] == document:
            return  # what memory already holds: a 5,000-binding document is not re-parsed
        if key in (TOKENS_KEY, BINDINGS_KEY):
            self._raw[key] = document
        if key == TOKENS_KEY:
            self._tokens = {
                r.id: r for r in map(TokenRecord.from_json, json.loads(document or "[]"))
            }
        elif key == BINDINGS_KEY:
            self._bindings = {
                b.node: b for b in map(NodeBinding.from_json, json.loads(document or "[]"))
            }

    def follow(self, state: ClusterState) -> None:
        """Forget a node's binding when the node is deleted."""

        def on_change(
            kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
        ) -> None:
            if deleted and isinstance(obj, Node) and obj.meta.name in self._bindings:
                task = asyncio.get_running_loop().create_task(self.unbind(obj.meta.name))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

        state.subscribe(on_change)

    # -- tokens ----------------------------------------------------------------------

    def tokens(self) -> list[TokenRecord]:
        return sorted(self._tokens.values(), key=lambda r: r.created_at)

    async def create_token(
        self, ca_hash: str, ttl: float, description: str
    ) -> tuple[JoinToken, TokenRecord]:
        async def change() -> tuple[JoinToken, TokenRecord]:
            now = self._clock.now()
            tokens = prune(self._tokens, now)
            if len(tokens) >= MAX_TOKENS:
                raise RegistryError(
                    f"there are already {MAX_TOKENS} join tokens: revoke some first"
                )
            token, record = generate_token(ca_hash, now, ttl, description)
            await self._save_tokens({**tokens, record.id: record})
            return token, record

        return await self._changing(TOKENS_KEY, change)

    async def revoke(self, token_id: str) -> TokenRecord | None:
        async def change() -> TokenRecord | None:
            record = self._tokens.get(token_id)
            if record is None:
                return None
            if not record.revoked_at:
                record = replace(record, revoked_at=self._clock.now())
                await self._save_tokens({**self._tokens, token_id: record})
            return record

        return await self._changing(TOKENS_KEY, change)

    def check(self, token_id: str, secret: str) -> str:
        """Why this token cannot join now ("" when it can)."""
        return check_token(self._tokens.get(token_id), secret, self._clock.now())

    async def count_use(self, token_id: str) -> None:
        """Count one join with this token; joins waiting at once are saved together."""

        def edit(tokens: dict[str, TokenRecord]) -> None:
            record = tokens.get(token_id)
            if record is not None:
                tokens[token_id] = record_use(record)

        await self._coalesced(TOKENS_KEY, edit)

    async def _changing(self, key: str, change: Callable[[], Awaitable[R]]) -> R:
        """Run `change` under the lock on the document as stored now; again on a conflict."""
        async with self._lock:
            for attempt in range(_CONFLICT_ATTEMPTS):
                self.take(key, await asyncio.to_thread(self._store.meta_get, key))
                try:
                    return await change()
                except WriteConflict:
                    if attempt + 1 == _CONFLICT_ATTEMPTS:
                        raise
            raise AssertionError("unreachable")

    async def _coalesced(self, key: str, edit: _Edit) -> None:
        """Queue `edit` for the key's next batch and wait until that batch is saved (or
        failed: then every change in it failed, and memory is as before)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.setdefault(key, []).append((edit, done))
        writer = self._writers.get(key)
        if writer is None or writer.done():
            self._writers[key] = asyncio.get_running_loop().create_task(self._write_batches(key))
        await done

    async def _write_batches(self, key: str) -> None:
        """Save the queued edits of `key`, a batch at a time, until none are left."""
        while batch := self._queued.pop(key, []):

            async def change(batch: list[tuple[_Edit, asyncio.Future[None]]] = batch) -> None:
                if key == TOKENS_KEY:
                    tokens = dict(self._tokens)
                    for edit, _ in batch:
                        edit(tokens)
                    if tokens != self._tokens:
                        await self._save_tokens(tokens)
                else:
                    bindings = dict(self._bindings)
                    for edit, _ in batch:
                        edit(bindings)
                    if bindings != self._bindings:
                        await self._save_bindings(bindings)

            try:
                await self._changing(key, change)
            except Exception as e:  # every join in the batch gets the store's error
                for _, done in batch:
                    if not done.done():
                        done.set_exception(e)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _save_tokens(self, tokens: dict[str, TokenRecord]) -> None:
        """Persist `tokens`, then make them the in-memory truth (never the other way)."""
        doc = json.dumps([r.to_json() for r in tokens.values()])
        await asyncio.to_thread(self._store.meta_set, TOKENS_KEY, doc)
        self._tokens = tokens
        self._raw[TOKENS_KEY] = doc

    # -- node bindings ------------------------------------------------------------------

    def binding(self, node: str) -> NodeBinding | None:
        return self._bindings.get(node)

    async def bind(self, node: str, key_sha256: str) -> None:
        """Bind the name to the key; binds waiting at once are saved together."""

        def edit(bindings: dict[str, NodeBinding]) -> None:
            current = bindings.get(node)
            if current is not None and current.key_sha256 == key_sha256:
                return
            bindings[node] = NodeBinding(node, key_sha256, self._clock.now())
            if current is not None:
                log.warning("node name %s moves to a new key (the old certificate is void)", node)

        await self._coalesced(BINDINGS_KEY, edit)

    async def unbind(self, node: str) -> None:
        async def change() -> None:
            if node in self._bindings:
                await self._save_bindings({n: b for n, b in self._bindings.items() if n != node})

        await self._changing(BINDINGS_KEY, change)

    def _bindings_document(self, bindings: dict[str, NodeBinding]) -> str:
        """`json.dumps` of every binding's JSON, each binding encoded once and kept: a join
        storm saved the whole list per batch, and encoding 5,000 bindings each time was
        the largest part of the master's CPU per join in the registry."""
        encoded = self._encoded
        parts = []
        for b in bindings.values():
            text = encoded.get(b)
            if text is None:
                text = encoded[b] = json.dumps(b.to_json())
            parts.append(text)
        if len(encoded) > 2 * len(bindings) + 64:
            self._encoded = {b: encoded[b] for b in bindings.values() if b in encoded}
        return "[" + ", ".join(parts) + "]"

    async def _save_bindings(self, bindings: dict[str, NodeBinding]) -> None:
        """Persist `bindings`, then make them the in-memory truth (never the other way)."""
        doc = self._bindings_document(bindings)
        await asyncio.to_thread(self._store.meta_set, BINDINGS_KEY, doc)
        self._bindings = bindings
        self._raw[BINDINGS_KEY] = doc
