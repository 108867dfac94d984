"""One-batch migration of a store written before namespaces existed.

Until namespaces, every object was keyed (kind, name). Now namespaced kinds are
keyed (kind, "<namespace>/<name>") (master.model.key_name) and cluster-scoped ones
keep their bare name. A store from before holds only `default`-namespace objects
(the manifest refused any other), whose stored data has no namespace field and
reads back as "default" (the codec fills a missing field with its default). So
migrating is: delete every old (kind, name) row of a namespaced kind and put the
same object under its new key — all in one store batch together with the marker
below, so a crash leaves either the old store or the new one. The put goes
through the SealingStore, which re-seals Secrets with their namespace bound.

The marker (`KEYS_META` = `KEYS_NAMESPACED` in the store's meta) says the keys
are namespaced; a fresh store gets it on its first start with no objects to move.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from master.model import StoredObject, is_namespaced
from master.store.port import ObjectKey

KEYS_META = "store.keys"
KEYS_NAMESPACED = "namespaced"


@dataclass(frozen=True, slots=True)
class KeyMigration:
    """What to write, in one batch, to bring an old store's keys up to date."""

    puts: list[StoredObject]
    deletes: list[ObjectKey]
    meta: dict[str, str]


def plan_key_migration(marker: str | None, objects: Iterable[StoredObject]) -> KeyMigration | None:
    """None when the store's keys are already namespaced (`marker` set); else the batch.

    `objects` are the store's contents as loaded (every namespaced one in "default").
    """
    if marker == KEYS_NAMESPACED:
        return None
    moved = [o for o in objects if is_namespaced(o.kind)]
    return KeyMigration(
        puts=moved,
        deletes=[(o.kind, o.meta.name) for o in moved],
        meta={KEYS_META: KEYS_NAMESPACED},
    )
