"""A StatefulSet manifest (apps/v1) -> the model's StatefulSet.

The pod template is checked as a Deployment's (deployment.parse_pod_template);
its containers may mount the volumeClaimTemplates by name. Each claim template
is a PersistentVolumeClaim (manifest/storage.py: pinnace's `local` class,
ReadWriteOnce or ReadWriteOncePod). `serviceName` names the governing (headless)
Service; `podManagementPolicy` OrderedReady or Parallel; `updateStrategy`
RollingUpdate (with `partition`) or OnDelete; `persistentVolumeClaimRetentionPolicy`
Retain or Delete for `whenDeleted` and `whenScaled`, as Kubernetes has them.
"""

from __future__ import annotations

from typing import Any

from master.manifest.deployment import parse_pod_template, parse_replicas, parse_selector
from master.manifest.errors import Where, describe
from master.manifest.fields import as_int, as_list, as_map, as_str, check_fields, one_of, require
from master.manifest.meta import parse_labels, parse_object_meta
from master.manifest.names import check_dns1123_label, check_dns1123_subdomain
from master.manifest.storage import parse_claim_spec
from master.model import ClaimTemplate, StatefulSet

SPEC_SUPPORTED = (
    "replicas", "selector", "template", "serviceName", "podManagementPolicy",
    "updateStrategy", "volumeClaimTemplates", "persistentVolumeClaimRetentionPolicy",
)  # fmt: skip
SPEC_UNSUPPORTED = ("minReadySeconds", "revisionHistoryLimit", "ordinals")
POLICIES = ("OrderedReady", "Parallel")
RETENTION = ("Retain", "Delete")


def _claim_templates(value: Any, where: Where) -> tuple[ClaimTemplate, ...]:
    templates: list[ClaimTemplate] = []
    seen: set[str] = set()
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        data = as_map(item, at)
        check_fields(data, at, ("metadata", "spec"), ("apiVersion", "kind"), ("status",))
        meta = as_map(require(data, "metadata", at), at.key("metadata"))
        check_fields(meta, at.key("metadata"), ("name", "labels"), ("annotations",))
        name = as_str(require(meta, "name", at.key("metadata")), at.key("metadata").key("name"))
        check_dns1123_label(name, at.key("metadata").key("name"))
        if name in seen:
            raise at.key("metadata").key("name").error(f"duplicate claim template {describe(name)}")
        seen.add(name)
        labels = parse_labels(meta.get("labels"), at.key("metadata").key("labels"))
        modes, size, storage_class = parse_claim_spec(require(data, "spec", at), at.key("spec"))
        templates.append(ClaimTemplate(name, modes, size, storage_class, labels))
    return tuple(templates)


def _update_strategy(value: Any, where: Where) -> tuple[str, int]:
    data = as_map(value, where)
    check_fields(data, where, ("type", "rollingUpdate"))
    kind = "RollingUpdate"
    if data.get("type") is not None:
        kind = one_of(data["type"], where.key("type"), ("RollingUpdate", "OnDelete"))
    rolling = as_map(data.get("rollingUpdate"), where.key("rollingUpdate"))
    if kind == "OnDelete" and rolling:
        raise where.key("rollingUpdate").error('may not be set when type is "OnDelete"')
    check_fields(rolling, where.key("rollingUpdate"), ("partition",), ("maxUnavailable",))
    partition = 0
    if rolling.get("partition") is not None:
        partition = as_int(rolling["partition"], where.key("rollingUpdate").key("partition"), 0)
    return kind, partition


def _retention(value: Any, where: Where) -> tuple[str, str]:
    data = as_map(value, where)
    check_fields(data, where, ("whenDeleted", "whenScaled"))
    deleted = scaled = "Retain"
    if data.get("whenDeleted") is not None:
        deleted = one_of(data["whenDeleted"], where.key("whenDeleted"), RETENTION)
    if data.get("whenScaled") is not None:
        scaled = one_of(data["whenScaled"], where.key("whenScaled"), RETENTION)
    return deleted, scaled


def parse_statefulset(data: dict[str, Any], where: Where) -> StatefulSet:
    check_fields(data, where, ("apiVersion", "kind", "metadata", "spec"), (), ("status",))
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1123_subdomain)
    at = where.key("spec")
    spec = as_map(require(data, "spec", where), at)
    check_fields(spec, at, SPEC_SUPPORTED, SPEC_UNSUPPORTED)
    replicas = parse_replicas(spec.get("replicas"), at.key("replicas"))
    selector = parse_selector(spec.get("selector"), at.key("selector"))
    claims = _claim_templates(spec.get("volumeClaimTemplates"), at.key("volumeClaimTemplates"))
    template = parse_pod_template(spec, at, selector, tuple(c.name for c in claims))
    service = ""
    if spec.get("serviceName") is not None:
        service = as_str(spec["serviceName"], at.key("serviceName"))
        if service:
            check_dns1123_label(service, at.key("serviceName"))
    policy = "OrderedReady"
    if spec.get("podManagementPolicy") is not None:
        policy = one_of(spec["podManagementPolicy"], at.key("podManagementPolicy"), POLICIES)
    strategy, partition = _update_strategy(spec.get("updateStrategy"), at.key("updateStrategy"))
    when_deleted, when_scaled = _retention(
        spec.get("persistentVolumeClaimRetentionPolicy"),
        at.key("persistentVolumeClaimRetentionPolicy"),
    )
    return StatefulSet(
        meta=meta,
        replicas=replicas,
        selector=selector,
        template=template,
        service_name=service,
        pod_management_policy=policy,
        update_strategy=strategy,
        partition=partition,
        claim_templates=claims,
        when_deleted=when_deleted,
        when_scaled=when_scaled,
    )
