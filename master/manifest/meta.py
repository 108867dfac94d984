"""metadata of manifests: an object's identity (name, labels, annotations) and the pod template's.

`metadata.namespace`, when given, must be a DNS-1123 label; a missing one is left
empty here and filled by `parse_manifests` (the -n flag, the URL's namespace, or
"default"). Whether the namespace exists is the application layer's question
(master/app/namespaces.py). Fields the server fills (uid,
resourceVersion, creationTimestamp, ...) are accepted and ignored so that the
output of `pinnace get -o yaml` can be applied again unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from master.manifest.errors import Where
from master.manifest.fields import as_map, as_str, as_str_map, check_fields
from master.manifest.names import check_annotations, check_dns1123_label, check_labels
from master.model import ObjectMeta

SUPPORTED = ("name", "namespace", "labels", "annotations")
# Written by the server; present in `get -o yaml` output.
SERVER_FILLED = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
UNSUPPORTED = ("generateName", "finalizers", "ownerReferences")


def parse_labels(value: Any, where: Where) -> dict[str, str]:
    labels = as_str_map(value, where)
    check_labels(labels, where)
    return labels


# Annotations the master itself maintains: shown by `get -o yaml`, dropped on
# apply, so `get -o yaml | apply -f -` changes nothing.
MANAGED_ANNOTATIONS = frozenset({"deployment.kubernetes.io/revision"})


def parse_annotations(value: Any, where: Where) -> dict[str, str]:
    annotations = as_str_map(value, where)
    check_annotations(annotations, where)
    return {k: v for k, v in annotations.items() if k not in MANAGED_ANNOTATIONS}


def parse_object_meta(
    value: Any, where: Where, check_name: Callable[[str, Where], None]
) -> ObjectMeta:
    """Top-level metadata; `check_name` is the kind's name rule (subdomain, DNS-1035 label)."""
    if value is None:
        raise where.key("name").error("is required")
    data = as_map(value, where)
    check_fields(data, where, SUPPORTED, UNSUPPORTED, SERVER_FILLED)
    namespace = ""
    if data.get("namespace") not in (None, ""):
        namespace = as_str(data["namespace"], where.key("namespace"))
        check_dns1123_label(namespace, where.key("namespace"))
    raw_name = data.get("name")
    if raw_name is None or raw_name == "":
        hint = " (generateName is not supported yet)" if data.get("generateName") else ""
        raise where.key("name").error(f"is required{hint}")
    name = as_str(raw_name, where.key("name"))
    check_name(name, where.key("name"))
    return ObjectMeta(
        name=name,
        labels=parse_labels(data.get("labels"), where.key("labels")),
        annotations=parse_annotations(data.get("annotations"), where.key("annotations")),
        namespace=namespace,
    )


def parse_template_labels(value: Any, where: Where) -> dict[str, str]:
    """spec.template.metadata: labels are kept; annotations are checked, then reported ignored."""
    data = as_map(value, where)
    template_unsupported = tuple(
        f for f in (*SUPPORTED, *UNSUPPORTED) if f not in ("labels", "annotations")
    )
    check_fields(
        data,
        where,
        ("labels", "annotations"),
        template_unsupported,
        SERVER_FILLED,
    )
    annotations = parse_annotations(data.get("annotations"), where.key("annotations"))
    if annotations:
        # The model's PodTemplate has nowhere to keep them yet.
        where.key("annotations").warn("not supported yet, ignored")
    return parse_labels(data.get("labels"), where.key("labels"))
