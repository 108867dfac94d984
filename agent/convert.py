"""Proto <-> agent dataclasses, at the gRPC edge only (agent/session.py).

The decision code never sees a protobuf message; this is the one place that
knows both shapes. Defaults the wire leaves empty (protocol, restart policy,
pull policy) are filled in the way Kubernetes defaults them.
"""

from __future__ import annotations

from agent.logs import LogOrder
from agent.model import (
    Assignments,
    ContainerPort,
    ContainerSeen,
    ContainerSpec,
    DNSOption,
    EnvVar,
    HTTPHeader,
    NodeInfo,
    PodAssignment,
    PodDNS,
    PodSpec,
    PodStatusReport,
    Probe,
    Resources,
    Security,
    Volume,
    VolumeFile,
    VolumeMount,
)
from agent.runtime.port import LogOptions
from agent.usage import UsageSample
from agent.volume_owner import ALWAYS
from kernel.names import DEFAULT_NAMESPACE, pod_ref, split_pod_ref
from protos import node_pb2 as pb


def resources_from_proto(msg: pb.Resources) -> Resources:
    return Resources(cpu_millis=msg.cpu_millis, memory_bytes=msg.memory_bytes)


def resources_to_proto(r: Resources) -> pb.Resources:
    return pb.Resources(cpu_millis=r.cpu_millis, memory_bytes=r.memory_bytes)


def probe_from_proto(msg: pb.Probe) -> Probe:
    """Zero timing fields take Kubernetes' defaults; an empty path is "/"."""
    return Probe(
        kind=msg.kind,
        port=msg.port,
        path=msg.path or "/",
        scheme=msg.scheme or "HTTP",
        http_headers=tuple(HTTPHeader(h.name, h.value) for h in msg.http_headers),
        command=tuple(msg.command),
        initial_delay_seconds=max(0, msg.initial_delay_seconds),
        period_seconds=msg.period_seconds if msg.period_seconds > 0 else 10,
        timeout_seconds=msg.timeout_seconds if msg.timeout_seconds > 0 else 1,
        success_threshold=msg.success_threshold if msg.success_threshold > 0 else 1,
        failure_threshold=msg.failure_threshold if msg.failure_threshold > 0 else 3,
    )


def container_from_proto(msg: pb.ContainerSpec) -> ContainerSpec:
    return ContainerSpec(
        name=msg.name,
        image=msg.image,
        command=tuple(msg.command),
        args=tuple(msg.args),
        env=tuple(EnvVar(e.name, e.value, e.from_source) for e in msg.env),
        ports=tuple(
            ContainerPort(p.container_port, (p.protocol or "TCP").upper(), p.name, p.host_port)
            for p in msg.ports
        ),
        requests=resources_from_proto(msg.requests),
        limits=resources_from_proto(msg.limits),
        image_pull_policy=msg.image_pull_policy or "IfNotPresent",
        readiness_probe=(
            probe_from_proto(msg.readiness_probe) if msg.HasField("readiness_probe") else None
        ),
        liveness_probe=(
            probe_from_proto(msg.liveness_probe) if msg.HasField("liveness_probe") else None
        ),
        config_error=msg.config_error,
        volume_mounts=tuple(
            VolumeMount(m.name, m.mount_path, m.sub_path, m.read_only) for m in msg.volume_mounts
        ),
        stdin=msg.stdin,
        stdin_once=msg.stdin_once,
        tty=msg.tty,
        security=security_from_proto(msg.security) if msg.HasField("security") else None,
    )


def security_from_proto(msg: pb.ContainerSecurity) -> Security:
    return Security(
        run_as_user=msg.run_as_user if msg.HasField("run_as_user") else None,
        run_as_group=msg.run_as_group if msg.HasField("run_as_group") else None,
        run_as_non_root=msg.run_as_non_root,
        read_only_root_filesystem=msg.read_only_root_filesystem,
        supplemental_groups=tuple(msg.supplemental_groups),
    )


def volume_from_proto(v: pb.Volume) -> Volume:
    return Volume(
        name=v.name,
        source=v.source,
        medium=v.medium,
        size_limit_bytes=v.size_limit_bytes,
        path=v.path,
        host_path_type=v.host_path_type,
        claim_name=v.claim_name,
        read_only=v.read_only,
        volume_name=v.volume_name,
        files=tuple(VolumeFile(f.path, f.content, f.mode or 0o644) for f in v.files),
        claim_bytes=v.claim_bytes,
    )


def pod_dns_from_proto(msg: pb.PodDNS) -> PodDNS:
    return PodDNS(
        policy=msg.policy or "ClusterFirst",
        nameservers=tuple(msg.nameservers),
        searches=tuple(msg.searches),
        options=tuple(DNSOption(o.name, o.value if o.has_value else None) for o in msg.options),
    )


def assignment_from_proto(msg: pb.PodAssignment) -> PodAssignment:
    return PodAssignment(
        name=pod_ref(msg.namespace, msg.name),
        epoch=msg.epoch,
        spec=PodSpec(
            containers=tuple(container_from_proto(c) for c in msg.spec.containers),
            restart_policy=msg.spec.restart_policy or "Always",
            termination_grace_period_seconds=msg.spec.termination_grace_period_seconds,
            volumes=tuple(volume_from_proto(v) for v in msg.spec.volumes),
            service_env=tuple(EnvVar(v.name, v.value, True) for v in msg.spec.service_env),
            dns=pod_dns_from_proto(msg.spec.dns),
            fs_group=msg.spec.fs_group if msg.spec.HasField("fs_group") else None,
            fs_group_change_policy=msg.spec.fs_group_change_policy or ALWAYS,
        ),
        labels=dict(msg.labels),
        owner=msg.owner,
        stop=msg.stop,
        namespace=msg.namespace,
        uid=msg.uid,
        seen={c.name: ContainerSeen(c.restart_count, c.container_id) for c in msg.seen},
    )


def assignments_from_proto(msg: pb.PodAssignments) -> Assignments:
    return Assignments(
        revision=msg.revision, pods=tuple(assignment_from_proto(p) for p in msg.pods)
    )


class AssignmentChunks:
    """Puts an assignment set the master sent in chunks back together.

    Chunks of one revision are collected until the one with `more` unset; a
    chunk of another revision starts over (the master sends whole sets only).
    """

    def __init__(self) -> None:
        self._revision: int | None = None
        self._pods: list[pb.PodAssignment] = []

    def add(self, msg: pb.PodAssignments) -> Assignments | None:
        """The whole set once its last chunk is in, else None."""
        if msg.revision != self._revision:
            self._pods = []
        self._revision = msg.revision
        self._pods.extend(msg.pods)
        if msg.more:
            return None
        whole = pb.PodAssignments(revision=msg.revision, pods=self._pods)
        self._revision, self._pods = None, []
        return assignments_from_proto(whole)


def status_to_proto(r: PodStatusReport) -> pb.PodStatusReport:
    namespace, name = split_pod_ref(r.pod_name)
    return pb.PodStatusReport(
        pod_name=name,
        namespace="" if namespace == DEFAULT_NAMESPACE else namespace,
        epoch=r.epoch,
        phase=r.phase,
        reason=r.reason,
        message=r.message,
        host_ip=r.host_ip,
        pod_ip=r.pod_ip,
        port_map=r.port_map,
        containers=[
            pb.ContainerStatusReport(
                name=c.name,
                state=c.state,
                reason=c.reason,
                message=c.message,
                ready=c.ready,
                restart_count=c.restart_count,
                container_id=c.container_id,
                image=c.image,
                exit_code=c.exit_code,
                started_at=c.started_at,
                image_note=c.image_note,
                image_id=c.image_id,
            )
            for c in r.containers
        ],
        ready=r.ready,
        started_at=r.started_at,
        removed=r.removed,
    )


def node_info_to_proto(n: NodeInfo) -> pb.NodeInfo:
    return pb.NodeInfo(
        name=n.name,
        address=n.address,
        capacity=resources_to_proto(n.capacity),
        allocatable=resources_to_proto(n.allocatable),
        labels=n.labels,
        agent_version=n.agent_version,
        os=n.os,
        kernel=n.kernel,
        container_runtime=n.container_runtime,
        witness_port=n.witness_port,
    )


def log_order_from_proto(msg: pb.LogRequest) -> LogOrder:
    return LogOrder(
        request_id=msg.request_id,
        pod=pod_ref(msg.namespace, msg.pod_name),
        container=msg.container,
        options=LogOptions(
            follow=msg.follow,
            tail_lines=int(msg.tail_lines),
            timestamps=msg.timestamps,
            since_seconds=int(msg.since_seconds),
        ),
        limit_bytes=int(msg.limit_bytes),
        previous=msg.previous,
    )


def usage_to_proto(u: UsageSample) -> pb.UsageReport:
    return pb.UsageReport(
        node_cpu_millis=u.node_cpu_millis,
        node_memory_bytes=u.node_memory_bytes,
        containers=[
            pb.ContainerUsage(
                pod=c.pod,
                container=c.container,
                cpu_millis=c.cpu_millis,
                memory_bytes=c.memory_bytes,
            )
            for c in u.containers
        ],
        measured_at=u.measured_at,
        volumes=[
            pb.VolumeUsage(
                volume_name=v.volume_name,
                claim_name=v.claim_name,
                used_bytes=v.used_bytes,
                capacity_bytes=v.capacity_bytes,
            )
            for v in u.volumes or ()
        ],
        volumes_listed=u.volumes is not None,
        claim_free_bytes=u.claim_free_bytes,
    )
