"""etcd primitives for leader election and watching, so master/ha/ needs no etcd types.

`EtcdLeases` wraps the few transactions leader election makes (put a key on a
lease, take a vacant key, read who holds it, the guard compare) and turns a
watch's replies into plain `Change`s. The decisions stay in master/ha/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from aetcd.rpc import kv_pb2, rpc_pb2, rpc_pb2_grpc

from master.store.etcd_client import EtcdClient, key_range_end
from master.store.port import StoreError


@dataclass(frozen=True, slots=True)
class Held:
    """Who holds a key: its value, create_revision and lease (0, b"", 0 when vacant)."""

    value: bytes
    create_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Change:
    key: bytes
    value: bytes
    mod_revision: int
    deleted: bool


class Compacted(StoreError):
    """A watch's start revision is gone from etcd's history: reload everything."""


class EtcdLeases:
    def __init__(self, client: EtcdClient) -> None:
        self._client = client

    def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: (its ID, the TTL etcd granted, which is never below etcd's minimum)."""
        reply = self._client.lease_grant(ttl)
        return int(reply.ID), int(reply.TTL)

    def keepalive(self, lease: int, timeout: float) -> int:
        return self._client.lease_keepalive(lease, timeout)

    def revoke(self, lease: int) -> None:
        self._client.lease_revoke(lease)

    def put_on_lease(self, key: bytes, value: bytes, lease: int) -> None:
        put = rpc_pb2.PutRequest(key=key, value=value, lease=lease)
        self._client.txn([], [rpc_pb2.RequestOp(request_put=put)], [])

    def held(self, key: bytes) -> Held:
        reply = self._client.range(key)
        if not reply.kvs:
            return Held(b"", 0)
        kv = reply.kvs[0]
        return Held(bytes(kv.value), int(kv.create_revision), int(kv.lease))

    def take_vacant(self, key: bytes, value: bytes, lease: int) -> tuple[bool, Held]:
        """Put key (on lease) only if it does not exist: (won, who holds it now)."""
        put = rpc_pb2.PutRequest(key=key, value=value, lease=lease)
        reply = self._client.txn(
            [holds(key, 0)],
            [rpc_pb2.RequestOp(request_put=put)],
            [rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
        )
        if reply.succeeded:
            return True, Held(value, int(reply.header.revision))
        kvs = reply.responses[0].response_range.kvs
        return False, Held(bytes(kvs[0].value), int(kvs[0].create_revision)) if kvs else Held(
            b"", 0
        )

    def current_revision(self, key: bytes) -> int:
        """etcd's revision now (read through `key`, which need not exist)."""
        return int(self._client.range(key).header.revision)

    def list_prefix(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        reply = self._client.range(prefix, key_range_end(prefix))
        return [(bytes(kv.key), bytes(kv.value)) for kv in reply.kvs]

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[list[Change]]:
        """Batches of changes under `prefix` from `start_revision` on, until the stream fails
        (StoreError) or the history is compacted (Compacted)."""
        import asyncio

        create = rpc_pb2.WatchCreateRequest(
            key=prefix, range_end=key_range_end(prefix), start_revision=start_revision
        )
        stop = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield rpc_pb2.WatchRequest(create_request=create)
            await stop.wait()  # closing our side would end the watch

        channel = self._client.aio_channel()
        try:
            call = rpc_pb2_grpc.WatchStub(channel).Watch(requests())
            async for reply in call:
                if reply.compact_revision:
                    raise Compacted(f"etcd compacted revision {start_revision} away")
                if reply.canceled:
                    raise StoreError(f"etcd cancelled the watch: {reply.cancel_reason}")
                yield [
                    Change(
                        bytes(e.kv.key),
                        bytes(e.kv.value),
                        int(e.kv.mod_revision),
                        e.type == kv_pb2.Event.DELETE,
                    )
                    for e in reply.events
                ]
        except grpc.RpcError as e:
            self._client.next_endpoint()
            raise StoreError(f"the etcd watch broke: {e.code().name}: {e.details()}") from None
        finally:
            stop.set()
            await channel.close()


def holds(key: bytes, create_revision: int) -> Any:
    """The compare "key was created at create_revision" (0: the key does not exist)."""
    return rpc_pb2.Compare(
        result=rpc_pb2.Compare.EQUAL,
        target=rpc_pb2.Compare.CREATE,
        key=key,
        create_revision=create_revision,
    )
