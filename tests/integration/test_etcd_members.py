"""EtcdStore on a real three-member etcd cluster: losing one member changes nothing a
master can see; losing quorum refuses writes with a clear error (and leaves no trace
of them); the store recovers on its own when quorum returns."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from master.store import StoreError
from master.store.etcd import EtcdStore
from master.store.etcd_client import EtcdSettings
from tests.etcd_cluster import EtcdCluster
from tests.unit.test_store_contract import by_key, pod


@pytest.fixture(scope="module")
def etcd3_module() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(members=3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd3(etcd3_module: EtcdCluster) -> EtcdCluster:
    """The module's three members, each running (a test before may have killed some)."""
    dead = [m for m in etcd3_module.members if m.process is None or m.process.poll() is not None]
    for member in dead:
        etcd3_module.start_member(member)
    if dead:
        etcd3_module.wait_healthy(timeout=30)
    return etcd3_module


def store_on(cluster: EtcdCluster, prefix: str, timeout: float = 5.0) -> EtcdStore:
    return EtcdStore(
        EtcdSettings(tuple(cluster.endpoints.split(",")), prefix=prefix, timeout=timeout)
    )


def test_losing_one_member_is_invisible(etcd3: EtcdCluster) -> None:
    prefix = f"/t-{uuid.uuid4().hex[:8]}/"
    store = store_on(etcd3, prefix)
    try:
        store.write([pod("web-1", rv=1)], [], meta={"resource_version": "1"})

        # The store talks to the first endpoint; kill exactly that member. If it was
        # etcd's leader, the write waits for an election (500 ms here), no error.
        etcd3.kill(etcd3.members[0])
        store.write([pod("web-2", rv=2)], [], meta={"resource_version": "2"})

        assert by_key(store.load_all()) == by_key([pod("web-1", rv=1), pod("web-2", rv=2)])
        assert store.meta_get("resource_version") == "2"
    finally:
        store.close()


def test_without_quorum_writes_are_refused_and_recover_on_their_own(
    etcd3: EtcdCluster,
) -> None:
    prefix = f"/t-{uuid.uuid4().hex[:8]}/"
    store = store_on(etcd3, prefix, timeout=1.5)
    try:
        store.write([pod("web-1", rv=1)], [], meta={"resource_version": "1"})
        etcd3.kill(etcd3.members[1])
        etcd3.kill(etcd3.members[2])

        with pytest.raises(StoreError, match=r"did not answer within 1\.5s .*lost quorum"):
            store.write([pod("web-2", rv=2)], [], meta={"resource_version": "2"})

        etcd3.start_member(etcd3.members[1])
        etcd3.start_member(etcd3.members[2])
        etcd3.wait_healthy(timeout=30)
        # The refused batch may or may not have landed; the master retries it (its
        # state re-queues a failed batch), and that retry must go through.
        deadline = time.monotonic() + 20
        while True:
            try:
                store.write([pod("web-2", rv=2)], [], meta={"resource_version": "2"})
                break
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        fresh = store_on(etcd3, prefix)
        try:
            assert by_key(fresh.load_all()) == by_key([pod("web-1", rv=1), pod("web-2", rv=2)])
        finally:
            fresh.close()
    finally:
        store.close()


def test_a_write_refused_without_quorum_never_lands_when_quorum_returns(
    etcd3: EtcdCluster,
) -> None:
    # The surviving member is the leader: it would append a transaction to its log, the
    # call would time out, and the entry would be committed once the others return (a scale
    # refused during a quorum loss created its pod afterwards, test_ha_agent). The store
    # asks for a quorum read first, so nothing is proposed.
    prefix = f"/t-{uuid.uuid4().hex[:8]}/"
    store = store_on(etcd3, prefix, timeout=1.5)
    try:
        store.write([pod("web-1", rv=1)], [], meta={"resource_version": "1"})
        leader = etcd3.leader()
        others = [m for m in etcd3.members if m is not leader]
        for member in others:
            etcd3.kill(member)
        with pytest.raises(StoreError, match="nothing was sent"):
            store.write([pod("web-2", rv=2)], [], meta={"resource_version": "2"})
        for member in others:
            etcd3.start_member(member)
        etcd3.wait_healthy(timeout=30)
        fresh = store_on(etcd3, prefix)
        try:
            assert by_key(fresh.load_all()) == by_key([pod("web-1", rv=1)])
        finally:
            fresh.close()
    finally:
        store.close()
