"""SqliteStore: the Store port on an embedded SQLite file (the master's --data-dir).

Why SQLite: one file, transactional, in the standard library, and fast enough
for the master's write pattern (batches of upserts every ~50 ms) in WAL mode
with synchronous=FULL — a commit is an append to the WAL plus an fsync of it
before COMMIT returns, so an acknowledged write survives a process crash AND a
power cut (NORMAL would skip that fsync and could lose the last batches).

Opening refuses, with one sentence naming the file and the fix, what would
otherwise fail later or silently: a zero-length database in a data directory
whose cluster exists (pki/ is there: the objects are gone, starting empty
would hide it), and a database, -wal or -shm file the master cannot write (every
write would fail). The files are created 0600 (SQLite gives -wal and -shm the
database's mode).

Layout: `objects(id, kind, name, resource_version, data)`, an ordinary rowid
table with a unique index on (kind, name), `data` being the codec's compact JSON;
`meta(key, value)` for small values. Schema version 1 kept the objects WITHOUT
ROWID, keyed by (kind, name): that puts whole rows in an index b-tree, whose cells
hold at most ~1,000 bytes of a 4 KiB page before the rest spills to an overflow
page, and a pod is ~2.3 KB, so every pod write rewrote a leaf and an overflow page
and moved a freed page through the freelist (~4x the CPU of a rowid table for the
same writes, measured, three writes a pod from apply to Running). Opening a version
1 file moves its rows into the version 2 table in one transaction (a crash midway
leaves the version 1 file as it was). The schema version lives in PRAGMA
user_version and the file is marked with PRAGMA application_id, so a file from a
newer pinnace, or some other program's database, is refused with one clear
sentence instead of being misread or scribbled on.

Threading: the master calls in through `asyncio.to_thread`, so the connection
is opened with check_same_thread=False and every use is serialised by a lock.
Each `write` is one BEGIN IMMEDIATE ... COMMIT; objects are encoded inside the
transaction and any failure (encoding, constraint, disk) rolls the whole batch
back and surfaces as StoreError.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from master.model import KINDS, StoredObject, key_of
from master.store.codec import CodecError, decode, encode
from master.store.port import ObjectKey, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 2
# "pnce": tells our files from other programs' SQLite databases.
APPLICATION_ID = 0x706E6365
DB_FILENAME = "pinnace.db"
# How long to wait for another connection's write lock before failing a batch.
BUSY_TIMEOUT_S = 5.0

# The objects table (version 2) under a name: the migration from version 1 builds it
# beside the old table and renames it.
_OBJECTS_TABLE = """CREATE TABLE {name} (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        resource_version INTEGER NOT NULL,
        data BLOB NOT NULL
    )"""
# The upserts' conflict target and the deletes' lookup.
_OBJECTS_KEY = "CREATE UNIQUE INDEX objects_by_key ON objects (kind, name)"

_SCHEMA_V2 = (
    _OBJECTS_TABLE.format(name="objects"),
    _OBJECTS_KEY,
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
)

# Version 1 -> 2: the objects out of the WITHOUT ROWID table into a rowid one (see the
# module docstring); `meta` stays as it is (small rows).
_MIGRATE_V1 = (
    _OBJECTS_TABLE.format(name="objects_v2"),
    "INSERT INTO objects_v2 (kind, name, resource_version, data) "
    "SELECT kind, name, resource_version, data FROM objects",
    "DROP TABLE objects",
    "ALTER TABLE objects_v2 RENAME TO objects",
    _OBJECTS_KEY,
)

# Rows one statement writes or deletes. The sqlite3 module lets go of the GIL for each
# step of a statement and takes it back after; `executemany` steps once a row, so a batch
# of 50,000 rows took the GIL back 50,000 times from a busy event loop, each time waiting
# for the loop to let go of it. 200 rows of 4 parameters stay under the 999 parameters a
# statement that SQLite builds before 3.32 allow.
ROWS_PER_STATEMENT = 200


@functools.cache
def _upsert(rows: int) -> str:
    """The statement that stores `rows` objects (a key twice: the later row wins)."""
    return (
        "INSERT INTO objects (kind, name, resource_version, data) VALUES "
        + ",".join(["(?, ?, ?, ?)"] * rows)
        + " ON CONFLICT (kind, name) DO UPDATE SET "
        "resource_version = excluded.resource_version, data = excluded.data"
    )


@functools.cache
def _delete(names: int) -> str:
    """The statement that deletes `names` objects of one kind."""
    return "DELETE FROM objects WHERE kind = ? AND name IN (" + ",".join(["?"] * names) + ")"


_META_SET = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


class SqliteStore:
    """The Store port on one SQLite file; see the module docstring."""

    def __init__(self, path: Path, cluster_exists: bool = False) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = _open(path, cluster_exists)

    @classmethod
    def in_data_dir(cls, data_dir: Path, cluster_exists: bool = False) -> SqliteStore:
        """The store kept in the master's --data-dir (created if missing).

        `cluster_exists`: the data directory shows a cluster was made here
        (its pki/), so an empty database means lost objects, not a new cluster.
        """
        return cls(data_dir / DB_FILENAME, cluster_exists)

    @property
    def path(self) -> Path:
        return self._path

    def load_all(self) -> list[StoredObject]:
        with self._lock:
            rows = self._run(lambda c: c.execute("SELECT kind, name, data FROM objects").fetchall())
        objects: list[StoredObject] = []
        for kind, name, data in rows:
            if kind not in KINDS:
                # Written by a newer master that knows more kinds; leave it be.
                log.warning("%s: skipping %s/%s: unknown kind", self._path, kind, name)
                continue
            try:
                objects.append(decode(kind, data))
            except CodecError as e:
                raise StoreError(f"{self._path}: stored {kind}/{name} is unreadable: {e}") from e
        return objects

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        if not puts and not deletes and not meta:
            with self._lock:
                self._connection()  # a closed store refuses even an empty batch
            return

        def batch(conn: sqlite3.Connection) -> None:
            for kind, names in _by_kind(deletes):
                for start in range(0, len(names), ROWS_PER_STATEMENT):
                    gone = names[start : start + ROWS_PER_STATEMENT]
                    conn.execute(_delete(len(gone)), (kind, *gone))
            # Encoded a statement's rows at a time, inside the transaction: one statement's
            # rows in memory at once, and a failure midway is rolled back like any other.
            for start in range(0, len(puts), ROWS_PER_STATEMENT):
                chunk = puts[start : start + ROWS_PER_STATEMENT]
                conn.execute(_upsert(len(chunk)), _row_values(chunk))
            if meta:
                conn.executemany(_META_SET, meta.items())

        with self._lock:
            self._transaction(batch, f"writing a batch of {len(puts)} puts, {len(deletes)} deletes")

    def meta_get(self, key: str) -> str | None:
        with self._lock:
            row = self._run(
                lambda c: c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            )
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        with self._lock:
            self._transaction(lambda c: c.execute(_META_SET, (key, value)), f"setting {key!r}")

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    # -- internals ---------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self._path}: the store is closed")
        return self._conn

    def _run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        try:
            return op(conn)
        except sqlite3.Error as e:
            raise StoreError(f"{self._path}: reading failed: {e}") from e

    def _transaction(self, op: Callable[[sqlite3.Connection], object], what: str) -> None:
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreError(f"{self._path}: {what} failed: {e}") from e
        try:
            op(conn)
            conn.execute("COMMIT")
        except StoreError:
            _rollback(conn)
            raise
        except Exception as e:
            _rollback(conn)
            raise StoreError(f"{self._path}: {what} failed: {e}") from e
        except BaseException:
            _rollback(conn)
            raise


def _by_kind(keys: Sequence[ObjectKey]) -> list[tuple[str, list[str]]]:
    """The keys' names grouped by kind, in the order the kinds first come."""
    grouped: dict[str, list[str]] = {}
    for kind, name in keys:
        grouped.setdefault(kind, []).append(name)
    return list(grouped.items())


def _row_values(objects: Sequence[StoredObject]) -> list[object]:
    """The parameters of `_upsert(len(objects))`: kind, key, version and data of each."""
    values: list[object] = []
    for obj in objects:
        try:
            data = encode(obj)
        except CodecError as e:
            raise StoreError(f"cannot store {obj.kind}/{obj.meta.name!r}: {e}") from e
        values += (obj.kind, key_of(obj), obj.meta.resource_version, data)
    return values


# -- opening -------------------------------------------------------------------------


def _open(path: Path, cluster_exists: bool) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path`, checked and migrated."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a database file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise StoreError(
            f"cannot create the data directory {path.parent}: {e.strerror or e}"
        ) from e
    _check_files(path, cluster_exists)
    try:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is
        # exactly one transaction and nothing is implicitly left open.
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as e:
        raise StoreError(_explain(path, e)) from e
    try:
        _prepare(conn, path)
    except BaseException as e:
        conn.close()
        if isinstance(e, sqlite3.Error):
            raise StoreError(_explain(path, e)) from e
        raise
    return conn


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    # Identify the file before changing anything in it: never convert another
    # program's database to WAL or add our tables to it.
    _check_identity(conn, path, inside_transaction=False)
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        log.warning("%s: SQLite refused WAL mode (using %s); writes will be slower", path, mode)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Re-read under the write lock: another process may have created it meanwhile.
        version = _check_identity(conn, path, inside_transaction=True)
        if version == 0:
            for statement in _SCHEMA_V2:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # Migrations from older schema versions, one step per version, in this transaction.
        if version == 1:
            for statement in _MIGRATE_V1:
                conn.execute(statement)
            conn.execute("PRAGMA user_version = 2")
            log.info("%s: moved the objects to schema version 2 (a rowid table)", path)
        # A real write, so a file SQLite opened read-only fails here, not on the
        # first user write.
        conn.execute(_META_SET, ("store.opened_by_pid", str(os.getpid())))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _check_files(path: Path, cluster_exists: bool) -> None:
    """Refuse an emptied database of an existing cluster and files we cannot write."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    except OSError as e:
        raise StoreError(f"cannot read the store {path}: {e.strerror or e}") from e
    if size == 0 and cluster_exists:
        raise StoreError(
            f"{path} is empty, but this data directory holds an existing cluster (pki/ is "
            f"there): restore {path.name} from a backup, or move the data directory away "
            f"to start a new cluster"
        )
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            raise StoreError(
                f"{file} is not writable by this master (uid {os.geteuid()}): make it "
                f"writable (chown it to this user and chmod 600 {file.name})"
            )
    if size is None:
        # Created here, 0600 from the first byte; SQLite gives -wal/-shm this mode.
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError as e:
            raise StoreError(f"cannot create the store {path}: {e.strerror or e}") from e


def _check_identity(conn: sqlite3.Connection, path: Path, *, inside_transaction: bool) -> int:
    """The file's schema version, after refusing foreign and newer databases."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(f"{path} is not a pinnace database (it belongs to another program)")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer pinnace (schema version {version}; "
            f"this one understands up to {SCHEMA_VERSION}); upgrade pinnace to use it"
        )
    if version == 0 and inside_transaction:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise StoreError(f"{path} is not a pinnace database (it holds other tables)")
    return version


def _explain(path: Path, e: sqlite3.Error) -> str:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        code &= 0xFF  # extended codes (READONLY_DBMOVED ...) carry the primary in the low byte
    if code == getattr(sqlite3, "SQLITE_NOTADB", 26):
        return f"{path} is not a pinnace database (SQLite: {e})"
    if code in (
        getattr(sqlite3, "SQLITE_CANTOPEN", 14),
        getattr(sqlite3, "SQLITE_READONLY", 8),
        getattr(sqlite3, "SQLITE_PERM", 3),
    ):
        return (
            f"cannot open the store {path}: {e}: make the data directory and its "
            f"pinnace.db* files writable by this master"
        )
    return f"cannot open the store {path}: {e}"


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back (e.g. on a full disk); nothing to undo then.
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("rollback failed", exc_info=True)
