"""The Store contract on EtcdStore against a real etcd, plus what only etcd adds:
several stores (masters) on one prefix, optimistic concurrency, failover between
members, and a clear refusal when etcd has lost quorum.

The contract's test functions are the very ones of tests/unit/test_store_contract.py
(imported, not copied), run here with an etcd-backed `make_store`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from master.store import StoreError
from master.store.etcd import SCHEMA_VERSION, EtcdStore
from master.store.etcd_client import EtcdClient, EtcdSettings, key_range_end
from master.store.port import Store
from tests.etcd_cluster import EtcdCluster
from tests.unit import test_store_contract as contract
from tests.unit.test_store_contract import by_key, one_of_each, pod

# Every contract test, under the same names; the SQLite-only ones stay in the unit suite.
globals().update(
    {
        name: fn
        for name, fn in vars(contract).items()
        if name.startswith("test_") and not name.startswith("test_sqlite_")
    }
)

StoreFactory = Callable[[], Store]


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(members=1)
    try:
        yield cluster
    finally:
        cluster.stop()


def settings(cluster: EtcdCluster, prefix: str, timeout: float = 5.0) -> EtcdSettings:
    return EtcdSettings(tuple(cluster.endpoints.split(",")), prefix=prefix, timeout=timeout)


@pytest.fixture
def prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def make_store(etcd: EtcdCluster, prefix: str) -> Iterator[StoreFactory]:
    """Every call opens another EtcdStore on the same prefix (like reopening a file)."""
    opened: list[Store] = []

    def make() -> Store:
        store = EtcdStore(settings(etcd, prefix))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


# -- etcd only -----------------------------------------------------------------------------


def test_etcd_keeps_everything_for_the_next_master(make_store: StoreFactory) -> None:
    first = make_store()
    objects = one_of_each()
    first.write(objects, [("Pod", "gone")], meta={"resource_version": "5"})
    first.meta_set("cluster_uid", "c-1")
    first.close()

    second = make_store()

    assert by_key(second.load_all()) == by_key(objects)
    assert second.meta_get("resource_version") == "5"
    assert second.meta_get("cluster_uid") == "c-1"


def test_etcd_load_all_pages_through_many_objects(make_store: StoreFactory) -> None:
    writer = make_store()
    pods = [pod(f"web-{i:04d}", rv=i) for i in range(2500)]  # 3 pages of 1000
    # Written in batches of 500: what is tested is the reader's paging. One transaction of
    # 2,500 puts took etcd longer than the client's 5 s at load 60-75 (2 CI-style runs of 2).
    for first in range(0, len(pods), 500):
        writer.write(pods[first : first + 500], [])

    reader = make_store()
    loaded = reader.load_all()

    assert by_key(loaded) == by_key(list(pods))
    assert isinstance(reader, EtcdStore) and reader.revision > 0


def test_etcd_refuses_a_write_over_a_change_it_has_not_seen(make_store: StoreFactory) -> None:
    a, b = make_store(), make_store()
    a.write([pod("web-1", rv=1), pod("web-2", rv=2)], [], meta={"resource_version": "2"})
    b.load_all()
    b.meta_get("resource_version")
    a.write([pod("web-1", rv=3)], [], meta={"resource_version": "3"})

    # b still believes web-1 is at rv 1: its whole batch is refused, nothing of it applied.
    with pytest.raises(StoreError, match=r"changed by another writer.*o/Pod/default/web-1"):
        b.write([pod("web-1", rv=9), pod("web-3", rv=9)], [], meta={"resource_version": "9"})

    assert by_key(make_store().load_all()) == by_key([pod("web-1", rv=3), pod("web-2", rv=2)])
    assert a.meta_get("resource_version") == "3"


def test_etcd_refuses_creating_what_another_writer_created(make_store: StoreFactory) -> None:
    a, b = make_store(), make_store()
    a.write([pod("web-1", rv=1)], [])

    with pytest.raises(StoreError, match="changed by another writer"):
        b.write([pod("web-1", rv=5)], [])

    assert make_store().load_all() == [pod("web-1", rv=1)]


def test_etcd_a_store_that_reloads_may_write_again(make_store: StoreFactory) -> None:
    a, b = make_store(), make_store()
    a.write([pod("web-1", rv=1)], [])
    with pytest.raises(StoreError):
        b.write([pod("web-1", rv=5)], [])

    b.load_all()
    b.write([pod("web-1", rv=6)], [])

    assert make_store().load_all() == [pod("web-1", rv=6)]


class AnswersLost(EtcdClient):
    """Every transaction lands and its answer is lost: the client's attempt was cut by its
    deadline while etcd applied it, and the answer handed back is the retry's."""

    def txn(self, compare: Sequence[Any], success: Sequence[Any], failure: Sequence[Any]) -> Any:
        super().txn(compare, success, failure)
        return super().txn(compare, success, failure)


def test_etcd_a_batch_that_landed_with_its_answer_lost_is_written_once(
    etcd: EtcdCluster, prefix: str, make_store: StoreFactory
) -> None:
    # Before: the store put its adopted keys again, that answer was lost too, and after
    # three rounds a batch that had landed failed as "etcd kept changing under it".
    lossy = EtcdStore(settings(etcd, prefix), client=AnswersLost(settings(etcd, prefix)))
    try:
        lossy.write([pod("web-1", rv=1), pod("web-2", rv=1)], [])
        lossy.write([pod("web-1", rv=2)], [("Pod", "default/web-2")], meta={"note": "n"})
        lossy.write([pod("web-1", rv=3)], [])
    finally:
        lossy.close()

    fresh = make_store()
    assert by_key(fresh.load_all()) == by_key([pod("web-1", rv=3)])
    assert fresh.meta_get("note") == "n"


def test_etcd_refuses_a_prefix_of_a_newer_pinnace(etcd: EtcdCluster, prefix: str) -> None:
    store = EtcdStore(settings(etcd, prefix))
    store.client.txn(
        [],
        [_put(prefix.encode() + b"schema", str(SCHEMA_VERSION + 1).encode())],
        [],
    )
    store.close()

    with pytest.raises(StoreError, match="newer pinnace"):
        EtcdStore(settings(etcd, prefix))


def test_etcd_names_an_unreachable_cluster() -> None:
    with pytest.raises(StoreError, match=r"etcd is unreachable at http://127\.0\.0\.1:1"):
        EtcdStore(EtcdSettings(("http://127.0.0.1:1",), timeout=2))


def test_etcd_endpoints_must_be_urls() -> None:
    with pytest.raises(StoreError, match=r"--etcd-endpoints: '10\.0\.0\.1' is not an etcd URL"):
        EtcdStore(EtcdSettings(("10.0.0.1",)))


def _put(key: bytes, value: bytes) -> object:
    from aetcd.rpc import rpc_pb2

    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))


def test_a_store_from_before_namespaces_is_migrated_in_one_batch(
    etcd: EtcdCluster, prefix: str
) -> None:
    """Keys (kind, name) as a master before namespaces wrote them become (kind, "ns/name"),
    with the marker, in one transaction; a Secret's old envelope is re-sealed."""
    import asyncio
    import json
    import os

    from aetcd.rpc import rpc_pb2

    from kernel.clock import FakeClock
    from master.model import Node, ObjectMeta, Resources, Secret, StoredObject
    from master.state import ClusterState
    from master.store.codec import encode
    from master.store.migrate import KEYS_META, KEYS_NAMESPACED
    from master.store.sealing import SealingStore, SecretSealer
    from tests.unit.test_namespace_keys import _legacy_seal

    key = os.urandom(32)
    sealer = SecretSealer(key)
    data = {"k": "dg=="}
    node = Node(ObjectMeta("node-1"), "127.0.0.1", Resources(1000, 1), Resources(1000, 1))
    old: list[StoredObject] = [
        pod("web-1"),
        Secret(ObjectMeta("creds"), sealed=_legacy_seal(key, sealer.key_id, "creds", data)),
        node,
    ]
    raw = EtcdStore(settings(etcd, prefix))
    try:
        puts = []
        for obj in old:
            body = json.loads(encode(obj))
            del body["meta"]["namespace"]  # the old model had no such field
            k = f"{prefix}o/{obj.kind}/{obj.meta.name}".encode()
            puts.append(
                rpc_pb2.RequestOp(
                    request_put=rpc_pb2.PutRequest(key=k, value=json.dumps(body).encode())
                )
            )
        raw.client.txn([], puts, [])
    finally:
        raw.close()

    async def load() -> ClusterState:
        store = SealingStore(EtcdStore(settings(etcd, prefix)), sealer)
        state = ClusterState(store, FakeClock())
        await state.load()
        store.close()
        return state

    state = asyncio.run(load())

    secret = state.get("Secret", "creds")
    assert isinstance(secret, Secret) and secret.data == data
    assert state.pod("web-1") is not None and state.get("Node", "node-1") is not None
    check = EtcdStore(settings(etcd, prefix))
    try:
        reply = check.client.range(f"{prefix}o/".encode(), key_range_end(f"{prefix}o/".encode()))
        keys = sorted(bytes(kv.key).decode().removeprefix(prefix) for kv in reply.kvs)
        sealed = {bytes(kv.key): bytes(kv.value) for kv in reply.kvs}[
            f"{prefix}o/Secret/default/creds".encode()
        ]
        assert check.meta_get(KEYS_META) == KEYS_NAMESPACED
    finally:
        check.close()
    assert keys == ["o/Node/node-1", "o/Pod/default/web-1", "o/Secret/default/creds"]
    assert b"aesgcm:v2:" in sealed
    assert asyncio.run(load()).get("Secret", "creds") == secret  # nothing left to move
