"""How a pod's volumes and a container's volumeMounts become engine mounts (pure).

emptyDir: a Docker volume named `pinnace-<node>-<pod>-<volume>`, shared by the
pod's containers and kept across their restarts; the volume collector
(agent/volume_gc.py) removes it once its pod has had no container for a while.
`medium: Memory` makes it a tmpfs of `sizeLimit` bytes the agent mounts and keeps
while the pod lives (agent/memory_volumes.py). hostPath: a bind mount
of the node's path; with type "" or DirectoryOrCreate a missing directory is
created, any other type must exist. persistentVolumeClaim: the node-local Docker
volume the master bound the claim to (`volume_name`), of the claim's size when the
node can enforce it (agent/claim_disks.py), removed only on the master's order.
emptyDirs and claims carry the pod's fsGroup, which owns them (agent/volume_owner.py).
A subPath is served in the form agent/sub_paths.py picks for the engine, and a hostPath's
type is checked there too, by the runtime when it makes the container.
"""

from __future__ import annotations

from agent.model import ContainerSpec, PodAssignment, Volume
from agent.runtime.port import LABEL_CLAIM, LABEL_NODE, LABEL_VOLUME_KIND, Mount, pod_labels
from agent.volume_files import DEFAULT_ROOT, FILE_SOURCES, volume_dir
from kernel.names import flat_pod_ref


def empty_dir_name(node: str, pod: str, volume: str) -> str:
    return f"pinnace-{node}-{flat_pod_ref(pod)}-{volume}"


def _mount(
    node: str,
    pod: str,
    vol: Volume,
    target: str,
    sub_path: str,
    ro: bool,
    files_root: str,
    fs_group: int | None,
    fs_group_policy: str,
) -> Mount:
    if vol.source in FILE_SOURCES:
        # The files the agent keeps on a tmpfs (agent/volume_files.py), read-only as in
        # Kubernetes; a subPath mounts one file (and, as there, is not updated in place).
        return Mount(
            "bind",
            target,
            volume_dir(files_root, node, pod, vol.name),
            True,
            sub_path,
            volume=vol.name,
        )
    if vol.source == "hostPath":
        return Mount(
            "bind",
            target,
            vol.path,
            read_only=ro,
            sub_path=sub_path,
            create=vol.host_path_type in ("", "DirectoryOrCreate"),
            volume=vol.name,
            host_path_type=vol.host_path_type,
        )
    if vol.source == "persistentVolumeClaim":
        labels = {LABEL_NODE: node, LABEL_VOLUME_KIND: "claim", LABEL_CLAIM: vol.claim_name}
        return Mount(
            "volume",
            target,
            vol.volume_name,
            read_only=ro or vol.read_only,
            sub_path=sub_path,
            labels=labels,
            volume=vol.name,
            size_bytes=vol.claim_bytes,
            fs_group=fs_group,
            fs_group_policy=fs_group_policy,
        )
    labels = {LABEL_NODE: node, **pod_labels(pod), LABEL_VOLUME_KIND: "emptyDir"}
    return Mount(
        "volume",
        target,
        empty_dir_name(node, pod, vol.name),
        read_only=ro,
        sub_path=sub_path,
        tmpfs_bytes=vol.size_limit_bytes if vol.medium == "Memory" else 0,
        labels=labels,
        volume=vol.name,
        fs_group=fs_group,
        fs_group_policy=fs_group_policy,
    )


def container_mounts(
    node: str, assignment: PodAssignment, spec: ContainerSpec, files_root: str = DEFAULT_ROOT
) -> tuple[Mount, ...]:
    volumes = {v.name: v for v in assignment.spec.volumes}
    return tuple(
        _mount(
            node,
            assignment.name,
            volumes[m.name],
            m.mount_path,
            m.sub_path,
            m.read_only,
            files_root,
            assignment.spec.fs_group,
            assignment.spec.fs_group_change_policy,
        )
        for m in spec.volume_mounts
        if m.name in volumes
    )
