"""Namespaced keys (issue 11): key names, the one-batch migration of a store from before
namespaces (SQLite file written the old way, Secrets sealed the old way), and names that
are unique per namespace only."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kernel.clock import FakeClock
from master.model import (
    ConfigMap,
    Deployment,
    Node,
    ObjectMeta,
    Pod,
    PodSpec,
    PodTemplate,
    Resources,
    Secret,
    StoredObject,
    key_name,
    key_of,
    split_key,
)
from master.state import ClusterState
from master.store.codec import encode
from master.store.memory import MemoryStore
from master.store.migrate import KEYS_META, KEYS_NAMESPACED, plan_key_migration
from master.store.port import ObjectKey, StoreError
from master.store.sealing import KEY_FILE, SealingStore, SecretSealer
from master.store.sqlite import DB_FILENAME, SqliteStore

VALUE = "correct horse battery staple"


def _node() -> Node:
    return Node(ObjectMeta("node-1"), "127.0.0.1", Resources(1000, 2**30), Resources(1000, 2**30))


def _pod(name: str, ns: str = "default", owner: str = "web") -> Pod:
    return Pod(ObjectMeta(name, namespace=ns, labels={"app": "web"}), PodSpec(()), owner=owner)


def test_namespaced_kinds_are_keyed_by_namespace_and_name_cluster_scoped_by_name() -> None:
    assert key_name("Pod", "team-a", "web-1") == "team-a/web-1"
    assert key_name("Node", "team-a", "node-1") == "node-1"
    assert split_key("Pod", "team-a/web-1") == ("team-a", "web-1")
    assert split_key("PersistentVolume", "pvc-1") == ("", "pvc-1")
    assert key_of(_pod("web-1")) == "default/web-1"


def test_the_migration_is_planned_once_and_moves_only_namespaced_kinds() -> None:
    node = _node()
    pod = _pod("web-1")

    plan = plan_key_migration(None, [node, pod])

    assert plan is not None
    assert plan.puts == [pod] and plan.deletes == [("Pod", "web-1")]
    assert plan.meta == {KEYS_META: KEYS_NAMESPACED}
    assert plan_key_migration(KEYS_NAMESPACED, [node, pod]) is None


def _legacy_seal(key: bytes, key_id: str, name: str, data: dict[str, str]) -> str:
    """A Secret's envelope as the master sealed it before namespaces (v1, name only)."""
    nonce = os.urandom(12)
    plain = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    sealed = AESGCM(key).encrypt(nonce, plain, f"Secret/{name}".encode())
    return f"aesgcm:v1:{key_id}:{base64.b64encode(nonce + sealed).decode()}"


def _write_old_store(data_dir: Path) -> dict[str, str]:
    """A data dir as a master before namespaces left it: rows keyed (kind, bare name)."""
    sealer = SecretSealer.in_data_dir(data_dir)
    key = (data_dir / KEY_FILE).read_bytes()
    SqliteStore.in_data_dir(data_dir).close()  # the schema, as any master makes it
    secret_data = {"password": base64.b64encode(VALUE.encode()).decode()}
    sealed = Secret(
        ObjectMeta("creds", uid="u-s", resource_version=3),
        sealed=_legacy_seal(key, sealer.key_id, "creds", secret_data),
    )
    rows: list[StoredObject] = [
        Deployment(
            ObjectMeta("web", uid="u-d", resource_version=1),
            replicas=2,
            selector={"app": "web"},
            template=PodTemplate({"app": "web"}, PodSpec(())),
        ),
        _pod("web-1"),
        ConfigMap(ObjectMeta("cfg", uid="u-c", resource_version=2), {"mode": "prod"}),
        sealed,
        replace(_node(), meta=ObjectMeta("node-1", uid="u-n", resource_version=4)),
    ]
    with sqlite3.connect(data_dir / DB_FILENAME) as db:
        for obj in rows:
            body = json.loads(encode(obj))
            del body["meta"]["namespace"]  # the old model had no such field
            db.execute(
                "INSERT INTO objects (kind, name, resource_version, data) VALUES (?, ?, ?, ?)",
                (obj.kind, obj.meta.name, obj.meta.resource_version, json.dumps(body).encode()),
            )
        db.execute("INSERT INTO meta (key, value) VALUES ('resource_version', '4')")
    return secret_data


def _open(data_dir: Path) -> SealingStore:
    return SealingStore(SqliteStore.in_data_dir(data_dir), SecretSealer.in_data_dir(data_dir))


def test_a_store_from_before_namespaces_loads_and_is_migrated_in_one_batch(
    tmp_path: Path,
) -> None:
    secret_data = _write_old_store(tmp_path)

    async def load() -> ClusterState:
        store = _open(tmp_path)
        state = ClusterState(store, FakeClock())
        await state.load()
        store.close()
        return state

    state = asyncio.run(load())

    assert state.get("ConfigMap", "cfg") is not None
    assert state.get("ConfigMap", "cfg", "team-a") is None
    secret = state.get("Secret", "creds")
    assert isinstance(secret, Secret) and secret.data == secret_data
    assert [p.meta.name for p in state.pods_of_owner("web")] == ["web-1"]
    assert state.get("Node", "node-1") is not None
    assert state.resource_version == 4
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        keys = sorted(db.execute("SELECT kind, name FROM objects").fetchall())
        marker = db.execute("SELECT value FROM meta WHERE key = ?", (KEYS_META,)).fetchone()
        (sealed,) = db.execute("SELECT data FROM objects WHERE kind = 'Secret'").fetchone()
    assert keys == [
        ("ConfigMap", "default/cfg"),
        ("Deployment", "default/web"),
        ("Node", "node-1"),
        ("Pod", "default/web-1"),
        ("Secret", "default/creds"),
    ]
    assert marker == (KEYS_NAMESPACED,)
    assert b"aesgcm:v2:" in bytes(sealed) and VALUE.encode() not in bytes(sealed)

    again = asyncio.run(load())  # a second start finds nothing to move

    assert again.get("Secret", "creds") == secret


def test_an_old_envelope_opens_only_in_the_default_namespace() -> None:
    key = os.urandom(32)
    sealer = SecretSealer(key)
    data = {"k": base64.b64encode(b"v").decode()}
    old = Secret(ObjectMeta("creds"), sealed=_legacy_seal(key, sealer.key_id, "creds", data))

    assert sealer.open(old).data == data
    with pytest.raises(StoreError, match="unknown encryption envelope"):
        sealer.open(replace(old, meta=replace(old.meta, namespace="team-a")))


def test_a_sealed_secret_moved_to_another_namespace_does_not_open() -> None:
    sealer = SecretSealer(os.urandom(32))
    sealed = sealer.seal(Secret(ObjectMeta("creds"), data={"k": "dg=="}))

    with pytest.raises(StoreError, match="damaged"):
        sealer.open(replace(sealed, meta=replace(sealed.meta, namespace="team-a")))


def test_same_names_in_two_namespaces_are_two_objects_with_their_own_pods() -> None:
    async def scenario() -> ClusterState:
        state = ClusterState(MemoryStore(), FakeClock())
        await state.load()

        def plan() -> None:
            for ns in ("default", "team-a"):
                state.put(ConfigMap(ObjectMeta("cfg", namespace=ns), {"ns": ns}))
                state.put(_pod("web-1", ns))
            state.put(_pod("web-2", "team-a"))

        await state.commit(plan)
        await state.commit(lambda: state.remove("ConfigMap", "cfg", "team-a"))
        return state

    state = asyncio.run(scenario())

    assert state.get("ConfigMap", "cfg", "team-a") is None
    cfg = state.get("ConfigMap", "cfg")
    assert isinstance(cfg, ConfigMap) and cfg.data == {"ns": "default"}
    assert [p.meta.name for p in state.pods_of_owner("web")] == ["web-1"]
    assert sorted(p.meta.name for p in state.pods_of_owner("web", "team-a")) == ["web-1", "web-2"]
    assert len(state.pods()) == 3 and len(state.pods("team-a")) == 2


def test_a_migration_another_master_did_first_is_taken_as_it_is() -> None:
    """Masters sharing one etcd start together: the loser's batch conflicts; it loads the
    winner's result instead of failing its start."""

    class RacedStore(MemoryStore):
        def write(
            self,
            puts: Sequence[StoredObject],
            deletes: Sequence[ObjectKey],
            meta: Mapping[str, str] | None = None,
        ) -> None:
            if meta and KEYS_META in meta and self.meta_get(KEYS_META) is None:
                super().write(puts, deletes, meta)  # the other master's identical batch
                raise StoreError("etcd: the keys changed meanwhile")
            super().write(puts, deletes, meta)

    store = RacedStore()
    store.write([ConfigMap(ObjectMeta("cfg"), {"a": "b"})], [])

    async def load() -> ClusterState:
        state = ClusterState(store, FakeClock())
        await state.load()
        return state

    state = asyncio.run(load())

    assert state.get("ConfigMap", "cfg") is not None
    assert store.meta_get(KEYS_META) == KEYS_NAMESPACED
