"""The SQLite file's layout and writes (master/store/sqlite.py): objects in a rowid table,
so that writing a stored pod rewrites one page; a version 1 file (objects WITHOUT ROWID)
moved to it on open with everything in it, or left as it was when the move fails; and a
batch written in a few statements, not one a row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from master.model import Container, ObjectMeta, Pod, PodSpec, StoredObject
from master.store import SCHEMA_VERSION, SqliteStore, StoreError
from master.store.codec import encode
from master.store.sqlite import APPLICATION_ID, ROWS_PER_STATEMENT

# Version 1's tables as that pinnace created them: the file an upgrade finds.
V1_TABLES = (
    """CREATE TABLE objects (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        resource_version INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (kind, name)
    ) WITHOUT ROWID""",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)


def pod(name: str, rv: int = 1) -> Pod:
    """A pod about as large as a running one is stored (~2.3 KB: its ledger, its status)."""
    return Pod(
        meta=ObjectMeta(name=name, resource_version=rv, annotations={"note": "x" * 2000}),
        spec=PodSpec(containers=(Container("web", "nginx"),)),
        node_name="node-1",
    )


def version_1_file(path: Path, objects: list[StoredObject], meta: dict[str, str]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in V1_TABLES:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO objects VALUES (?, ?, ?, ?)",
        [(o.kind, f"default/{o.meta.name}", o.meta.resource_version, encode(o)) for o in objects],
    )
    conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def layout(path: Path) -> tuple[int, str, list[str]]:
    """The file's schema version, its objects table's SQL and its indexes on objects."""
    conn = sqlite3.connect(path)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        (table,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'objects'"
        ).fetchone()
        indexes = [
            str(r[0])
            for r in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'objects' "
                "AND sql IS NOT NULL"
            )
        ]
        return version, str(table), indexes
    finally:
        conn.close()


def wal_frames(path: Path) -> int:
    """The pages in the file's write-ahead log (each a frame: a 24-byte header and a page)."""
    conn = sqlite3.connect(path)
    try:
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()
    wal = path.with_name(path.name + "-wal")
    return (wal.stat().st_size - 32) // (page + 24)


def test_a_new_file_keeps_objects_in_a_rowid_table_keyed_by_kind_and_name(
    tmp_path: Path,
) -> None:
    SqliteStore(tmp_path / "db").close()

    version, table, indexes = layout(tmp_path / "db")

    assert version == SCHEMA_VERSION == 2
    assert "WITHOUT ROWID" not in table.upper()
    assert indexes == ["CREATE UNIQUE INDEX objects_by_key ON objects (kind, name)"]


def test_writing_a_stored_pod_again_rewrites_one_page(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = SqliteStore(path)
    try:
        store.write([pod(f"web-{i:03d}") for i in range(100)], [])
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()

        store.write([pod("web-050", rv=2)], [])

        # Version 1 rewrote four: the leaf, a new overflow page, the freelist, the header.
        assert wal_frames(path) == 1
    finally:
        store.close()


def test_a_version_1_file_is_moved_to_version_2_with_everything_in_it(tmp_path: Path) -> None:
    path = tmp_path / "db"
    pods = [pod(f"web-{i}", rv=i + 1) for i in range(5)]
    version_1_file(path, list(pods), {"resource_version": "9", "cluster_uid": "c-1"})

    store = SqliteStore(path)
    try:
        assert sorted(store.load_all(), key=lambda o: o.meta.name) == pods
        assert store.meta_get("resource_version") == "9"
        assert store.meta_get("cluster_uid") == "c-1"
        version, table, indexes = layout(path)
        assert version == 2
        assert "WITHOUT ROWID" not in table.upper()
        assert len(indexes) == 1
        # Written as any version 2 file: replaced, added, deleted.
        store.write([pod("web-0", rv=20), pod("web-9", rv=21)], [("Pod", "default/web-1")])
    finally:
        store.close()

    again = SqliteStore(path)
    try:
        versions = {o.meta.name: o.meta.resource_version for o in again.load_all()}
        assert versions == {"web-0": 20, "web-2": 3, "web-3": 4, "web-4": 5, "web-9": 21}
    finally:
        again.close()


def test_a_move_that_fails_leaves_the_version_1_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "db"
    pods = [pod("web-1"), pod("web-2")]
    version_1_file(path, list(pods), {"resource_version": "2"})
    conn = sqlite3.connect(path)
    # The move's last step (the key's index) cannot be made: it fails after the rows
    # were copied, the old table dropped and the new one renamed.
    conn.execute("CREATE TABLE spare (k INTEGER)")
    conn.execute("CREATE INDEX objects_by_key ON spare (k)")
    conn.commit()
    conn.close()

    with pytest.raises(StoreError):
        SqliteStore(path)

    version, table, _ = layout(path)
    assert version == 1
    assert "WITHOUT ROWID" in table.upper()
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name FROM objects ORDER BY name").fetchall()
    finally:
        conn.close()
    assert rows == [("default/web-1",), ("default/web-2",)]


def test_a_batch_is_written_in_a_statement_a_few_hundred_rows(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db")
    try:
        store.write([pod(f"web-{i}") for i in range(1000)], [])
        executed: list[str] = []
        store._connection().set_trace_callback(executed.append)

        store.write(
            [pod(f"web-{i}", rv=2) for i in range(1000, 2000)],
            [("Pod", f"default/web-{i}") for i in range(500)],
            meta={"resource_version": "2"},
        )

        writes = [sql for sql in executed if sql.startswith(("INSERT", "DELETE"))]
        # 1,000 puts and 500 deletes (one statement each before), and the meta row.
        puts, deletes = -(-1000 // ROWS_PER_STATEMENT), -(-500 // ROWS_PER_STATEMENT)
        assert len(writes) == puts + deletes + 1
    finally:
        store.close()
    again = SqliteStore(tmp_path / "db")
    try:
        assert len(again.load_all()) == 1500
    finally:
        again.close()
