"""Annotation names the storage objects carry, shared by their renderer and the tables.

Kept apart from master/api/render_storage.py, which imports the model and the claims
controller: `pinnace get pvc` prints these from JSON and should not load either.
"""

from __future__ import annotations

USED_BYTES = "pinnace.io/used-bytes"
CAPACITY_BYTES = "pinnace.io/capacity-bytes"
DEFAULT_STORAGE_CLASS = "storageclass.kubernetes.io/is-default-class"
