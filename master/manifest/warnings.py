"""What apply says about what pinnace cannot honour: one warning line per object.

Validators note each field pinnace knows but does not implement with
`Where.warn` (file, document, field path, reason). A user applying a real
application's files would drown in one line per field, so `object_warnings`
folds every note about one object into a single line, naming the object and
grouping the fields by reason:

    app.yaml: document 2: Deployment "web": spec.minReadySeconds,
    spec.template.spec.volumes: not supported yet, ignored

Kinds that only add policy around a workload (roles, autoscalers, network
policies, ingress classes ...) are accepted with one such line and not stored: the
application still runs, the user learns what is not enforced. Kinds that would
run or hold something (Pod, StatefulSet, Job, PersistentVolumeClaim ...) are
refused instead, since ignoring them would leave the application broken.
"""

from __future__ import annotations

from collections.abc import Sequence

from master.manifest.errors import Warned

# Kind -> why pinnace can accept and ignore it (said once per object).
IGNORED_KINDS: dict[str, str] = {
    "Role": "pinnace has no role-based access control",
    "ClusterRole": "pinnace has no role-based access control",
    "RoleBinding": "pinnace has no role-based access control",
    "ClusterRoleBinding": "pinnace has no role-based access control",
    "NetworkPolicy": "pods are not isolated by network policies",
    "PodDisruptionBudget": "evictions do not consult disruption budgets",
    "HorizontalPodAutoscaler": "replicas are not scaled automatically",
    "StorageClass": 'pinnace has built-in StorageClasses "local" (the default: node-local, '
    'reclaim policy Delete, expandable) and "local-retain" (the same, reclaim policy Retain)',
    "LimitRange": "no default or maximum resources are enforced",
    "ResourceQuota": "no quotas are enforced",
    "PriorityClass": "pods have no priorities",
}


def object_warnings(warned: Sequence[Warned], objects: Sequence[tuple[str, str, str]]) -> list[str]:
    """One line per object for the notes of one document.

    `objects` are (field path of the object in the document: "" or "items[3]",
    kind, name); a note belongs to the object whose path prefixes its own.
    """
    lines: list[str] = []
    for root, kind, name in objects:
        mine = [w for w in warned if _under(w[2], root)]
        if not mine:
            continue
        file, document = mine[0][0], mine[0][1]
        by_reason: dict[str, list[str]] = {}
        for _, _, path, reason in mine:
            relative = path[len(root) :].lstrip(".") if root else path
            by_reason.setdefault(reason, []).append(relative or "kind")
        groups = "; ".join(f"{', '.join(paths)}: {reason}" for reason, paths in by_reason.items())
        where = f"{root}: " if root else ""
        lines.append(f'{file}: document {document}: {where}{kind} "{name}": {groups}')
    return lines


def _under(path: str, root: str) -> bool:
    return not root or path == root or path.startswith(root + ".") or path.startswith(root + "[")
