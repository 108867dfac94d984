"""The master's persistence: the Store port and its implementations.

`Store` (port.py) is what the rest of the master depends on; `SqliteStore`
(sqlite.py) is the real one, kept in the master's --data-dir; `MemoryStore`
(memory.py) has the same semantics in dicts for tests. Objects travel as the
codec's compact JSON (codec.py). `sqlite3` is imported only in this package.
"""

from master.store.codec import CodecError, decode, encode
from master.store.memory import MemoryStore
from master.store.port import ObjectKey, Store, StoreError
from master.store.sqlite import DB_FILENAME, SCHEMA_VERSION, SqliteStore

__all__ = [
    "DB_FILENAME",
    "SCHEMA_VERSION",
    "CodecError",
    "MemoryStore",
    "ObjectKey",
    "SqliteStore",
    "Store",
    "StoreError",
    "decode",
    "encode",
]
