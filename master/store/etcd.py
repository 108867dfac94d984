"""EtcdStore: the Store port on an etcd cluster (`pinnace master --store etcd`).

Layout, under one key prefix (default `/pinnace/`):
  <prefix>o/<Kind>/<name>   the codec's compact JSON of one object
  <prefix>m/<key>           a metadata value (resource-version high-water mark,
                            join tokens, ...)
  <prefix>schema            the layout's version, refused when newer

Resource versions keep the port's meaning: the master's in-memory state
(master/state.py) numbers every change as it makes it, answers with that
number at once and persists changes in batches. etcd's revision could not play
that part: it exists only after the batch commits, and one batch (one etcd
transaction, one revision) carries many changes that each need their own
version. So objects carry the master's numbers and `m/resource_version` holds
the high-water mark, written in the same transaction as the batch, exactly as
in SQLite. etcd's revision is used for what it is good at: ordering and
concurrency (below) and watching from a point in history (`watch`).

Optimistic concurrency: the store remembers the mod_revision of every key it
has read or written (0 for a key it believes absent), and each batch is ONE
transaction whose compares require every key it touches to be unchanged. If
anyone else wrote one of them meanwhile — a second master on the same prefix,
a deposed leader — the transaction fails as a whole and the batch is refused
with the keys named. The failure branch reads those keys back in the same
round trip: a key holding exactly what this store wrote in a batch whose
outcome it never learnt (a timeout) is its own write, adopted, and the batch
retried; when every key holds the batch already (the client retried an attempt
that had been applied), it is written. A transaction etcd answered neither way
raises OutcomeUnknown and leaves the store `in_doubt` until `settle` writes after
it; meanwhile `write` sends nothing (WritesInDoubt), and the master pauses and
reloads its memory (leader election for a leader, master/settler.py for a single
master). An
optional guard compare (the leader key, set by leader election) goes into every
transaction too.

Limits: one batch is one transaction, so etcd must allow the master's largest
batch (`--max-txn-ops`, default 128; `--max-request-bytes`, default 1.5 MiB);
when it does not, the error says which flag to raise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from aetcd.rpc import rpc_pb2

from master.model import KINDS, StoredObject, key_of
from master.store.codec import CodecError, decode, encode
from master.store.etcd_client import EtcdClient, EtcdSettings, key_range_end
from master.store.port import (
    ObjectKey,
    OutcomeUnknown,
    StoreError,
    WriteConflict,
    WritesInDoubt,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# Objects per Range page when loading everything.
PAGE = 1000
# How often a batch is retried after finding that its only "conflicts" were its own writes.
_ADOPT_RETRIES = 3

_EQUAL = rpc_pb2.Compare.EQUAL
_MOD = rpc_pb2.Compare.MOD


class EtcdStore:
    """The Store port on etcd; see the module docstring."""

    def __init__(self, settings: EtcdSettings, client: EtcdClient | None = None) -> None:
        prefix = settings.prefix if settings.prefix.endswith("/") else settings.prefix + "/"
        self._prefix = prefix.encode()
        self._client = client or EtcdClient(settings)
        self._lock = threading.Lock()
        self._closed = False
        # mod_revision of every key this store has seen; 0 = believed absent.
        self._revs: dict[bytes, int] = {}
        # Values of batches whose outcome is unknown (a timeout): key -> bytes, None = deleted.
        self._uncertain: dict[bytes, bytes | None] = {}
        # A transaction's outcome is unknown (see _commit) and no write has settled it since.
        self.in_doubt = False
        # Extra compares in every transaction (leader election's fence).
        self._guard: list[Any] = []
        # The etcd revision of the last load_all: a watch from revision + 1 misses nothing.
        self.revision = 0
        try:
            self._check_schema()
        except BaseException:
            self._client.close()
            raise

    @property
    def client(self) -> EtcdClient:
        return self._client

    @property
    def prefix(self) -> bytes:
        return self._prefix

    def object_key(self, kind: str, name: str) -> bytes:
        return self._prefix + f"o/{kind}/{name}".encode()

    def meta_key(self, key: str) -> bytes:
        return self._prefix + f"m/{key}".encode()

    # -- the port ---------------------------------------------------------------------

    def load_all(self) -> list[StoredObject]:
        with self._lock:
            self._check_open()
            start = self._prefix + b"o/"
            end = key_range_end(start)
            objects: list[StoredObject] = []
            revision = 0
            while True:
                reply = self._client.range(start, end, limit=PAGE, revision=revision)
                revision = revision or int(reply.header.revision)
                for kv in reply.kvs:
                    self._revs[bytes(kv.key)] = int(kv.mod_revision)
                    obj = self._decode(bytes(kv.key), bytes(kv.value))
                    if obj is not None:
                        objects.append(obj)
                if not reply.more or not reply.kvs:
                    break
                start = bytes(reply.kvs[-1].key) + b"\0"
            self.revision = revision
        return objects

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        # Final value per key: deletes first, then puts (the last put of a key wins);
        # etcd refuses a transaction that names one key twice.
        final: dict[bytes, bytes | None] = {}
        for kind, name in deletes:
            final[self.object_key(str(kind), str(name))] = None
        for obj in puts:
            try:
                data = encode(obj)
            except Exception as e:
                name = getattr(getattr(obj, "meta", None), "name", "?")
                kind = getattr(obj, "kind", type(obj).__name__)
                raise StoreError(f"cannot store {kind}/{name!r}: {e}") from e
            final[self.object_key(obj.kind, key_of(obj))] = data
        for key, value in (meta or {}).items():
            final[self.meta_key(str(key))] = str(value).encode()
        with self._lock:
            self._check_open()
            if self.in_doubt and final:
                # Until settled: the queue may hold a key's older copy, and the adoption
                # below would take the unknown write's value as its own and write over it.
                raise WritesInDoubt(
                    f"writing a batch ({len(puts)} puts, {len(deletes)} deletes) waits, "
                    f"nothing was sent: an earlier write's outcome is unknown until etcd "
                    f"settles it and this master reloads what it holds; retry in a moment"
                )
            if final:
                self._commit(final, f"{len(puts)} puts, {len(deletes)} deletes")

    def meta_get(self, key: str) -> str | None:
        with self._lock:
            self._check_open()
            k = self.meta_key(key)
            reply = self._client.range(k)
            if not reply.kvs:
                self._revs[k] = 0
                return None
            self._revs[k] = int(reply.kvs[0].mod_revision)
            return bytes(reply.kvs[0].value).decode()

    def meta_set(self, key: str, value: str) -> None:
        # Not under the leader guard: metadata values set one at a time are the documents
        # every master shares (join tokens, node bindings, the cluster identity), and any
        # master may change them, each change compared against the revision it read.
        with self._lock:
            self._check_open()
            self._commit({self.meta_key(key): value.encode()}, f"setting {key!r}", guarded=False)

    def settle(self) -> None:
        """Write a marker key, unguarded, to settle a transaction whose outcome was unknown.

        Once etcd commits this write, every entry before it in the Raft log is committed or
        gone for good (a leader commits in log order; an entry a new leader lacks is
        overwritten): a read after it sees the unknown transaction's true fate, which a read
        alone could miss while that entry still waits for its quorum."""
        with self._lock:
            self._check_open()
            self._client.txn([], [_op(self.meta_key("settled"), b"1")], [])
            self.in_doubt = False

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._client.close()

    # -- beyond the port: leader election and followers --------------------------------

    def set_guard(self, compares: Sequence[Any]) -> None:
        """Compares added to every later transaction (e.g. "the leader key is still mine")."""
        with self._lock:
            self._guard = list(compares)

    def observe(self, key: bytes, mod_revision: int) -> None:
        """A change seen elsewhere (a watch): later writes of `key` compare against it."""
        with self._lock:
            self._revs[key] = mod_revision
            self._uncertain.pop(key, None)

    def parse_key(self, key: bytes) -> tuple[str, str, str] | None:
        """("object", kind, name) or ("meta", key, "") for a key of this store, else None."""
        if not key.startswith(self._prefix):
            return None
        rest = key[len(self._prefix) :].decode(errors="replace")
        if rest.startswith("o/"):
            kind, _, name = rest[2:].partition("/")
            return ("object", kind, name)
        if rest.startswith("m/"):
            return ("meta", rest[2:], "")
        return None

    def decode_object(self, key: bytes, value: bytes) -> StoredObject | None:
        """The object stored under `key` (None for a kind this master does not know)."""
        return self._decode(key, value)

    # -- internals ---------------------------------------------------------------------

    def _commit(self, final: dict[bytes, bytes | None], what: str, guarded: bool = True) -> None:
        guard = self._guard if guarded else []
        # A linearizable read first: etcd answers it only through a quorum. Without one, a
        # transaction would still be appended to the log of a member that believes it leads,
        # time out here ("may or may not have been applied"), and be committed once the
        # other members return: a write this master refused would then take effect (a scale
        # refused during a quorum loss created its pod after it, test_ha_agent). The read
        # fails instead, and nothing was proposed. Left: a quorum lost in the moment
        # between the two calls.
        try:
            self._client.range(self._prefix + b"m/quorum")
        except StoreError as e:
            # The client's words allow for a write that may have landed; this was a read.
            why = str(e).split("; a write may or may not", 1)[0]
            raise StoreError(f"writing a batch ({what}) failed, nothing was sent: {why}") from None
        for _ in range(_ADOPT_RETRIES):
            keys = list(final)
            compare = [*guard, *(self._compare(k) for k in keys)]
            success = [_op(k, v) for k, v in final.items()]
            failure = [rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=k)) for k in keys]
            try:
                reply = self._client.txn(compare, success, failure)
            except StoreError as e:
                if "may or may not" not in str(e):
                    raise StoreError(f"writing a batch ({what}) failed: {e}") from None
                self._uncertain.update(final)
                # Until a later write settles etcd's log, this master's memory may lack a
                # change etcd commits after all: the leader pauses and reloads (elector).
                self.in_doubt = True
                raise OutcomeUnknown(f"writing a batch ({what}) was not confirmed: {e}") from None
            if reply.succeeded:
                revision = int(reply.header.revision)
                for k, v in final.items():
                    self._revs[k] = 0 if v is None else revision
                    self._uncertain.pop(k, None)
                return
            conflicts, landed = self._resolve(keys, final, reply)
            if conflicts:
                raise WriteConflict(
                    f"writing a batch ({what}) refused: changed by another writer since "
                    f"this master read them: {', '.join(conflicts[:5])}"
                    + (f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else "")
                )
            if guard and not self._guard_holds():
                raise StoreError(f"writing a batch ({what}) refused: this master is not the leader")
            if _holds_the_batch(keys, final, reply):
                # Every key already holds this batch: an attempt of this very transaction that
                # the client gave up on and retried was applied (a 2,500-object batch at load
                # 38 did so on every retry until "etcd kept changing under it").
                for k in keys:
                    self._uncertain.pop(k, None)
                return
            # Keys already holding this batch's value (adopted above) are not put again:
            # each retry whose answer is lost in turn would move them on (at load 70 three
            # rounds of that failed a landed batch of 2,500 pods as "kept changing under it").
            for k in landed:
                del final[k]
        raise StoreError(f"writing a batch ({what}) failed: etcd kept changing under it")

    def _compare(self, key: bytes) -> Any:
        return rpc_pb2.Compare(
            result=_EQUAL, target=_MOD, key=key, mod_revision=self._revs.get(key, 0)
        )

    def _resolve(
        self, keys: list[bytes], final: dict[bytes, bytes | None], reply: Any
    ) -> tuple[list[str], list[bytes]]:
        """Adopt keys whose current value is this store's own write; name the others.
        Returns (the others' names, the adopted keys that already hold their `final` value)."""
        conflicts: list[str] = []
        landed: list[bytes] = []
        for key, response in zip(keys, reply.responses, strict=True):
            kvs = response.response_range.kvs
            current_rev = int(kvs[0].mod_revision) if kvs else 0
            current = bytes(kvs[0].value) if kvs else None
            if current_rev == self._revs.get(key, 0):
                continue
            ours = current == final[key] or (
                key in self._uncertain and current == self._uncertain[key]
            )
            if ours:
                self._revs[key] = current_rev
                if current == final[key]:
                    landed.append(key)
                    self._uncertain.pop(key, None)
            else:
                conflicts.append(key[len(self._prefix) :].decode(errors="replace"))
        return conflicts, landed

    def _guard_holds(self) -> bool:
        reply = self._client.txn(self._guard, [], [])
        return bool(reply.succeeded)

    def _decode(self, key: bytes, value: bytes) -> StoredObject | None:
        rest = key[len(self._prefix) + 2 :].decode(errors="replace")
        kind, _, name = rest.partition("/")
        if kind not in KINDS:
            # Written by a newer master that knows more kinds; leave it be.
            log.warning("etcd: skipping %s/%s: unknown kind", kind, name)
            return None
        try:
            return decode(kind, value)
        except CodecError as e:
            raise StoreError(f"etcd: stored {kind}/{name} is unreadable: {e}") from e

    def _check_schema(self) -> None:
        key = self._prefix + b"schema"
        mine = str(SCHEMA_VERSION).encode()
        reply = self._client.txn(
            [
                rpc_pb2.Compare(
                    result=_EQUAL, target=rpc_pb2.Compare.CREATE, key=key, create_revision=0
                )
            ],
            [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=mine))],
            [rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
        )
        if reply.succeeded:
            return
        kvs = reply.responses[0].response_range.kvs
        stored = bytes(kvs[0].value).decode(errors="replace") if kvs else ""
        if not stored.isdigit():
            raise StoreError(
                f"etcd key {key.decode(errors='replace')} holds {stored!r}: this prefix belongs "
                f"to something else; choose another with --etcd-prefix"
            )
        if int(stored) > SCHEMA_VERSION:
            raise StoreError(
                f"the pinnace data under {self._prefix.decode()} in etcd was written by a newer "
                f"pinnace (schema version {stored}; this one understands up to "
                f"{SCHEMA_VERSION}); upgrade pinnace to use it"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")


def _holds_the_batch(keys: list[bytes], final: dict[bytes, bytes | None], reply: Any) -> bool:
    """Whether a failed transaction's reads show every key holding what it would write."""
    for key, response in zip(keys, reply.responses, strict=True):
        kvs = response.response_range.kvs
        if (bytes(kvs[0].value) if kvs else None) != final[key]:
            return False
    return True


def _op(key: bytes, value: bytes | None) -> Any:
    if value is None:
        return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))
