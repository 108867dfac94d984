"""A Deployment manifest (apps/v1) -> the model's Deployment.

Checks what Kubernetes checks before it stores a Deployment: a selector that
selects the template's own labels, a pod template that can run, replicas in
range and a rollout strategy that can make progress (maxSurge and
maxUnavailable may not both be zero). The result carries no uid, version or
timestamps; the master fills those when it stores the object.
"""

from __future__ import annotations

import re
from typing import Any

from master.manifest.errors import Where, describe
from master.manifest.fields import as_int, as_list, as_map, check_fields, one_of, require
from master.manifest.meta import parse_labels, parse_object_meta, parse_template_labels
from master.manifest.names import check_dns1123_subdomain
from master.manifest.podspec import parse_pod_spec
from master.model import Deployment, DeploymentStrategy, PodTemplate, RollingUpdate

MAX_REPLICAS = 10_000
SPEC_SUPPORTED = ("replicas", "selector", "template", "strategy")
SPEC_UNSUPPORTED = ("minReadySeconds", "revisionHistoryLimit", "paused", "progressDeadlineSeconds")
STRATEGIES = ("RollingUpdate", "Recreate")
_PERCENT = re.compile(r"^[0-9]{1,9}%\Z")


def parse_replicas(value: Any, where: Where) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise where.error(f"must be an integer >= 0, got {describe(value)}")
    if value > MAX_REPLICAS:
        raise where.error(f"must be at most {MAX_REPLICAS}, got {value}")
    return value


def parse_selector(value: Any, where: Where) -> dict[str, str]:
    if value is None:
        raise where.error("is required")
    data = as_map(value, where)
    check_fields(data, where, ("matchLabels", "matchExpressions"))
    if as_list(data.get("matchExpressions"), where.key("matchExpressions")):
        raise where.key("matchExpressions").error("not supported yet; use matchLabels")
    selector = parse_labels(data.get("matchLabels"), where.key("matchLabels"))
    if not selector:
        raise where.key("matchLabels").error("is required (an empty selector selects nothing)")
    return selector


def _int_or_percent(value: Any, where: Where, max_percent: int | None) -> str:
    """maxSurge/maxUnavailable: an integer >= 0 or a percentage like "25%"; kept as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(as_int(value, where, 0))
    if isinstance(value, str) and _PERCENT.match(value):
        if max_percent is not None and int(value[:-1]) > max_percent:
            raise where.error(f"must not be more than {max_percent}%, got {describe(value)}")
        return value
    raise where.error(f'must be an integer >= 0 or a percentage like "25%", got {describe(value)}')


def _parse_strategy(value: Any, where: Where) -> tuple[DeploymentStrategy, RollingUpdate]:
    data = as_map(value, where)
    check_fields(data, where, ("type", "rollingUpdate"))
    kind = "RollingUpdate"
    if data.get("type") is not None:
        kind = one_of(data["type"], where.key("type"), STRATEGIES)
    at = where.key("rollingUpdate")
    rolling = as_map(data.get("rollingUpdate"), at)
    if kind == "Recreate":
        if rolling:
            raise at.error('may not be set when type is "Recreate"')
        return DeploymentStrategy.RECREATE, RollingUpdate()
    check_fields(rolling, at, ("maxSurge", "maxUnavailable"))
    surge, unavailable = RollingUpdate().max_surge, RollingUpdate().max_unavailable
    if rolling.get("maxSurge") is not None:
        surge = _int_or_percent(rolling["maxSurge"], at.key("maxSurge"), None)
    if rolling.get("maxUnavailable") is not None:
        unavailable = _int_or_percent(rolling["maxUnavailable"], at.key("maxUnavailable"), 100)
    if surge.rstrip("%") == "0" and unavailable.rstrip("%") == "0":
        raise at.key("maxUnavailable").error("may not be 0 when maxSurge is 0")
    return DeploymentStrategy.ROLLING_UPDATE, RollingUpdate(
        max_surge=surge, max_unavailable=unavailable
    )


def parse_pod_template(
    spec: dict[str, Any],
    at: Where,
    selector: dict[str, str],
    claim_templates: tuple[str, ...] = (),
) -> PodTemplate:
    """spec.template of a workload: labels that match the selector and a pod spec that runs."""
    template_at = at.key("template")
    template = as_map(require(spec, "template", at), template_at)
    check_fields(template, template_at, ("metadata", "spec"))
    labels = parse_template_labels(template.get("metadata"), template_at.key("metadata"))
    missing = {k: v for k, v in selector.items() if labels.get(k) != v}
    if missing:
        wanted = ", ".join(f"{k}={v}" for k, v in missing.items())
        raise (
            template_at.key("metadata")
            .key("labels")
            .error(f"must match spec.selector.matchLabels (missing {wanted})")
        )
    pod_spec = parse_pod_spec(
        require(template, "spec", template_at), template_at.key("spec"), claim_templates
    )
    return PodTemplate(labels=labels, spec=pod_spec)


def parse_deployment(data: dict[str, Any], where: Where) -> Deployment:
    """`data` is one document already known to be kind Deployment, apiVersion apps/v1."""
    check_fields(data, where, ("apiVersion", "kind", "metadata", "spec"), (), ("status",))
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1123_subdomain)
    at = where.key("spec")
    spec = as_map(require(data, "spec", where), at)
    check_fields(spec, at, SPEC_SUPPORTED, SPEC_UNSUPPORTED)
    replicas = parse_replicas(spec.get("replicas"), at.key("replicas"))
    selector = parse_selector(spec.get("selector"), at.key("selector"))
    template = parse_pod_template(spec, at, selector)
    strategy, rolling = _parse_strategy(spec.get("strategy"), at.key("strategy"))
    return Deployment(
        meta=meta,
        replicas=replicas,
        selector=selector,
        template=template,
        strategy=strategy,
        rolling_update=rolling,
    )
