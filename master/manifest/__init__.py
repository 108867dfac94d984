"""Kubernetes manifests in, validated model objects out -- before anything is stored.

`parse_manifests([(file name, bytes), ...])` reads multi-document YAML
(`---`; a `kind: List` with `items` too), accepts Deployments (apps/v1) and
Services (v1) exactly as Kubernetes would for the fields pinnace implements,
and returns `ParsedManifests(objects, warnings)`. Fields Kubernetes knows but
pinnace does not implement yet are warnings ("...: not supported yet,
ignored"); unknown fields, wrong types and invalid values raise one
`ManifestError` with one sentence per invalid document (every document is
checked, so the user sees the whole list at once):
``<file>: document <n>: <field path>: <reason>``. Warnings come one line per
object (master/manifest/warnings.py). `parse_references` reads only the kind
and name of each object, for `delete -f`.

The master runs this on input from the network, so it is bounded:

- a file may be at most 1 MiB (`MAX_FILE_BYTES`);
- one apply may hold at most 200 documents across all files (`MAX_DOCUMENTS`)
  and at most 200 objects (`MAX_OBJECTS`; each item of a `kind: List` counts);
- values may nest at most 40 levels deep (`MAX_DEPTH`);
- a file may use at most 200 YAML aliases (`MAX_ALIASES`), and a document may
  hold at most 100,000 values once its aliases are expanded
  (`MAX_EXPANDED_NODES`), which stops "billion laughs" documents;
- YAML is read with the safe loader only (libyaml's when present); text must be
  UTF-8; replicas are at most 10,000.

Flow: loader (bytes -> plain documents, limits) -> documents (kind dispatch,
List, duplicates) -> deployment / service -> meta, podspec (fields, names,
quantities) -> model objects without uid, version or timestamps.
"""

from master.manifest.documents import (
    MAX_OBJECTS,
    ManifestObject,
    ParsedManifests,
    parse_documents,
    parse_manifests,
)
from master.manifest.errors import ManifestError
from master.manifest.loader import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_DOCUMENTS,
    MAX_EXPANDED_NODES,
    MAX_FILE_BYTES,
)
from master.manifest.quantities import (
    format_cpu,
    format_memory,
    format_memory_ki,
    parse_quantity_cpu,
    parse_quantity_memory,
)
from master.manifest.references import ObjectReference, parse_references

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_DOCUMENTS",
    "MAX_EXPANDED_NODES",
    "MAX_FILE_BYTES",
    "MAX_OBJECTS",
    "ManifestError",
    "ManifestObject",
    "ObjectReference",
    "ParsedManifests",
    "format_cpu",
    "format_memory",
    "format_memory_ki",
    "parse_documents",
    "parse_manifests",
    "parse_quantity_cpu",
    "parse_quantity_memory",
    "parse_references",
]
