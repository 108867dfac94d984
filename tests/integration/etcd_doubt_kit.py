"""What the tests of a single etcd master's writes in doubt share: one etcd member, the relay
of etcd_trap.py in front of it, a read of a stored object past the relay, and a check that the
master takes writes again.

Fixtures are imported by name into the test modules (`from ... import etcd, trap`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from master.model import StoredObject
from master.store.codec import decode
from master.store.etcd_client import EtcdClient, EtcdSettings
from tests.etcd_cluster import EtcdCluster
from tests.integration.etcd_trap import EtcdTrap
from tests.integration.masters import Masters


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(members=1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def trap(etcd: EtcdCluster) -> Iterator[EtcdTrap]:
    relay = EtcdTrap(etcd.members[0].client_port)
    try:
        yield relay
    finally:
        relay.close()


def stored(etcd: EtcdCluster, kind: str, key: str) -> StoredObject:
    """The object etcd holds under `key` (the prefix's "o/Kind/ns/name"), read past the relay."""
    client = EtcdClient(EtcdSettings((etcd.members[0].client_url,)))
    try:
        [kv] = client.range(key.encode()).kvs
    finally:
        client.close()
    return decode(kind, bytes(kv.value))


def takes_writes(masters: Masters, address: str) -> Callable[[], bool]:
    """A check that the master stores a new object (a namespace of a fresh name each call)."""
    probes = iter(range(1_000_000))

    def check() -> bool:
        made = masters.cli(address, "create", "namespace", f"probe-{next(probes)}")
        return made.returncode == 0

    return check
