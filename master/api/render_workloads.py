"""A StatefulSet in Kubernetes' shape (`-o yaml`, the HTTP API, `get sts` tables).

The pod template is rendered without the volumes pinnace derives from the
volumeClaimTemplates, so what is shown is what the user wrote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from master.manifest.quantities import format_memory
from master.model import PodSpec, StatefulSet

Obj = dict[str, Any]


def render_statefulset(
    sts: StatefulSet, metadata: Obj, render_pod_spec: Callable[[PodSpec], Obj]
) -> Obj:
    claims = {t.name for t in sts.claim_templates}
    spec_volumes = tuple(v for v in sts.template.spec.volumes if v.name not in claims)
    template_spec = render_pod_spec(replace(sts.template.spec, volumes=spec_volumes))
    update: Obj = {"type": sts.update_strategy}
    if sts.update_strategy == "RollingUpdate":
        update["rollingUpdate"] = {"partition": sts.partition}
    st = sts.status
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata,
        "spec": {
            "replicas": sts.replicas,
            "selector": {"matchLabels": dict(sts.selector)},
            "serviceName": sts.service_name,
            "podManagementPolicy": sts.pod_management_policy,
            "updateStrategy": update,
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": sts.when_deleted,
                "whenScaled": sts.when_scaled,
            },
            "template": {"metadata": {"labels": dict(sts.template.labels)}, "spec": template_spec},
            "volumeClaimTemplates": [
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {
                        "name": t.name,
                        **({"labels": dict(t.labels)} if t.labels else {}),
                    },
                    "spec": {
                        "accessModes": list(t.access_modes),
                        "resources": {"requests": {"storage": format_memory(t.storage_bytes)}},
                        "storageClassName": t.storage_class,
                        "volumeMode": "Filesystem",
                    },
                }
                for t in sts.claim_templates
            ],
        },
        "status": {
            "observedGeneration": st.observed_generation,
            "replicas": st.replicas,
            "readyReplicas": st.ready_replicas,
            "availableReplicas": st.ready_replicas,
            "currentReplicas": st.current_replicas,
            "updatedReplicas": st.updated_replicas,
            "currentRevision": st.current_revision,
            "updateRevision": st.update_revision,
        },
    }
