"""What `delete -f` needs from manifests: each object's kind and name, nothing more.

kubectl deletes what a file names even when the rest of the file would no
longer validate (an older manifest, a field since renamed), so deleting does not
run the full validation of `parse_manifests`: each document (and each item of a
`kind: List`) only has to say its `kind` and `metadata.name` (and its
`metadata.namespace`, else the -n namespace, else "default"). Files are loaded
with the same limits as for apply. Kinds pinnace accepts and ignores on apply
(roles, autoscalers ...) are skipped here too: nothing of theirs was stored.
Every problem is reported at once, one sentence a line, as for apply.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from master.manifest.errors import ManifestError, Where, describe
from master.manifest.loader import TooManyDocuments, load_documents
from master.manifest.warnings import IGNORED_KINDS
from master.model import DEFAULT_NAMESPACE, is_namespaced


@dataclass(frozen=True, slots=True)
class ObjectReference:
    kind: str
    name: str
    namespace: str = DEFAULT_NAMESPACE


def _references(
    value: Any, where: Where, kinds: Collection[str], namespace: str | None = None
) -> list[ObjectReference]:
    if not isinstance(value, dict):
        raise where.error(f"must be a Kubernetes object (a map), got {describe(value)}")
    kind = value.get("kind")
    if kind == "List":
        items = value.get("items")
        if not isinstance(items, list):
            raise where.key("items").error(f"must be a list, got {describe(items)}")
        at = where.key("items")
        return [
            ref
            for i, item in enumerate(items)
            for ref in _references(item, at.index(i), kinds, namespace)
        ]
    if kind in IGNORED_KINDS:
        return []
    if not isinstance(kind, str) or kind not in kinds:
        raise where.key("kind").error(
            f"cannot delete kind {describe(kind)}; pinnace stores {', '.join(sorted(kinds))}"
        )
    meta = value.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        raise where.key("metadata").key("name").error("is required to delete an object")
    if not is_namespaced(kind):
        return [ObjectReference(kind, name)]
    own = meta.get("namespace") if isinstance(meta, dict) else None
    if own not in (None, "") and not isinstance(own, str):
        raise where.key("metadata").key("namespace").error(f"must be a string, got {describe(own)}")
    if own and namespace and own != namespace:
        raise (
            where.key("metadata")
            .key("namespace")
            .error(
                f'the namespace from the provided object "{own}" does not match the namespace '
                f'"{namespace}"; pass --namespace={own} or remove metadata.namespace'
            )
        )
    return [ObjectReference(kind, name, own or namespace or DEFAULT_NAMESPACE)]


def parse_references(
    files: Sequence[tuple[str, bytes]], kinds: Collection[str], namespace: str | None = None
) -> list[ObjectReference]:
    """Every object the files name, in file order, each once; ManifestError lists all problems."""
    errors: list[str] = []
    found: dict[ObjectReference, None] = {}
    seen = 0
    for file, content in files:
        try:
            count, documents = load_documents(file, content, seen)
        except TooManyDocuments as e:
            errors.append(str(e))
            break
        except ManifestError as e:
            errors.append(str(e))
            continue
        seen += count
        for number, value in documents:
            try:
                refs = _references(value, Where(file, number), kinds, namespace)
                found.update(dict.fromkeys(refs))
            except ManifestError as e:
                errors.append(str(e))
    if errors:
        raise ManifestError("\n".join(errors[:50]))
    return list(found)
