"""Secrets at rest (issue 11): SealingStore over a real store keeps only ciphertext on disk."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from master.model import ConfigMap, ObjectMeta, Secret
from master.store.memory import MemoryStore
from master.store.port import StoreError
from master.store.sealing import KEY_FILE, SealingStore, SecretSealer
from master.store.sqlite import DB_FILENAME, SqliteStore

VALUE = b"correct horse battery staple"
SECRET = Secret(ObjectMeta("creds", uid="u1"), data={"password": base64.b64encode(VALUE).decode()})


def test_key_is_made_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    first = SecretSealer.in_data_dir(tmp_path)
    again = SecretSealer.in_data_dir(tmp_path)

    mode = stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode)
    assert mode == 0o600
    assert first.key_id == again.key_id and len(first.key_id) == 16


def test_sqlite_file_holds_no_secret_value_and_load_gives_it_back(tmp_path: Path) -> None:
    store = SealingStore(SqliteStore.in_data_dir(tmp_path), SecretSealer.in_data_dir(tmp_path))
    other = ConfigMap(ObjectMeta("cfg"), {"mode": "prod"})

    store.write([SECRET, other], [])
    loaded = {o.kind: o for o in store.load_all()}
    store.close()

    assert loaded == {"Secret": SECRET, "ConfigMap": other}
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name != KEY_FILE)
    assert VALUE not in raw and SECRET.data["password"].encode() not in raw
    assert b"prod" in raw  # the same file does hold other kinds in the clear
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        rows = [bytes(r[0]) for r in db.execute("SELECT data FROM objects WHERE kind='Secret'")]
    assert len(rows) == 1 and b"aesgcm:v2:" in rows[0]


def test_another_key_or_another_secret_name_cannot_open_it(tmp_path: Path) -> None:
    inner = MemoryStore()
    SealingStore(inner, SecretSealer(os.urandom(32))).write([SECRET], [])
    (sealed,) = inner.load_all()
    assert isinstance(sealed, Secret) and sealed.data == {}

    with pytest.raises(StoreError, match="was encrypted with key"):
        SealingStore(inner, SecretSealer(os.urandom(32))).load_all()
    sealer = SecretSealer(os.urandom(32))
    moved = sealer.seal(SECRET)
    with pytest.raises(StoreError, match="damaged"):
        sealer.open(replace(moved, meta=replace(moved.meta, name="other")))
