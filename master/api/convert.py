"""Proto <-> model conversion for the node API: the only place both meet.

The servicers call these at the edge so controllers and the scheduler see only
dataclasses. Values from agents are untrusted: they are clamped or rejected here
(an absurd capacity, a negative restart count), never passed on as they came.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from sys import intern
from typing import Literal

from kernel.addresses import is_ip
from kernel.limits import WITNESS_SAMPLE_MIN
from master.app.podenv import ResolvedEnv, ResolvedVar
from master.app.podvolumes import ResolvedFiles
from master.app.reports import PodReport
from master.manifest.security import effective
from master.model import (
    DEFAULT_NAMESPACE,
    Container,
    ContainerPort,
    ContainerState,
    ContainerStatus,
    EnvVar,
    HTTPHeader,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    Probe,
    ProbeKind,
    Resources,
    SecurityContext,
    Volume,
)
from protos import node_pb2

# Sanity bounds for what an agent may claim (a 1M-core, 1 PiB machine is a lie).
MAX_CPU_MILLIS = 1_000_000_000
MAX_MEMORY_BYTES = 2**50
_PHASES = {p.value: p for p in PodPhase}
_CONTAINER_STATES = {s.value: s for s in ContainerState}
_PROBE_KINDS = {k.value: k for k in ProbeKind}


def _clamp(value: int, high: int) -> int:
    return max(0, min(int(value), high))


def resources_from_proto(msg: node_pb2.Resources) -> Resources:
    return Resources(
        cpu_millis=_clamp(msg.cpu_millis, MAX_CPU_MILLIS),
        memory_bytes=_clamp(msg.memory_bytes, MAX_MEMORY_BYTES),
    )


def resources_to_proto(res: Resources) -> node_pb2.Resources:
    return node_pb2.Resources(cpu_millis=res.cpu_millis, memory_bytes=res.memory_bytes)


MAX_NODE_LABELS = 64


def _bounded_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """At most MAX_NODE_LABELS labels, keys and values cut to Kubernetes' lengths."""
    items = sorted(labels.items())[:MAX_NODE_LABELS]
    return {k[:253]: v[:63] for k, v in items}


def node_from_proto(info: node_pb2.NodeInfo, existing: Node | None, now: float) -> Node:
    """The Node object for a registration; keeps cordon state and identity across re-registers."""
    capacity = resources_from_proto(info.capacity)
    allocatable = resources_from_proto(info.allocatable)
    allocatable = Resources(
        min(allocatable.cpu_millis, capacity.cpu_millis),
        min(allocatable.memory_bytes, capacity.memory_bytes),
    )
    status = NodeStatus(
        ready=existing.status.ready if existing else False,
        reason=existing.status.reason if existing else "",
        message=existing.status.message if existing else "",
        last_heartbeat=now,
        last_transition=existing.status.last_transition if existing else now,
        agent_version=info.agent_version[:64],
        os=info.os[:128],
        kernel=info.kernel[:128],
        container_runtime=info.container_runtime[:128],
    )
    meta = existing.meta if existing else ObjectMeta(name=info.name)
    meta = ObjectMeta(
        name=meta.name,
        uid=meta.uid,
        labels=_bounded_labels(info.labels),
        annotations=meta.annotations,
        resource_version=meta.resource_version,
        generation=meta.generation,
        created_at=meta.created_at,
        managed_fields=meta.managed_fields,
    )
    return Node(
        meta=meta,
        address=info.address,
        capacity=capacity,
        allocatable=allocatable,
        unschedulable=existing.unschedulable if existing else False,
        status=status,
        witness_port=_clamp(info.witness_port, 65535),
        # A restarted agent says its routes again; they outlived it meanwhile.
        pod_cidr_ready=existing.pod_cidr_ready if existing else "",
        pod_unreached=existing.pod_unreached if existing else (),
    )


def peers_to_proto(
    node_name: str, witnesses: Sequence[tuple[str, str, int]], cluster_size: int, limit: int
) -> node_pb2.PeerList:
    """The other nodes an agent may ask about the master: at most `limit` of the
    (name, address, witness port) rows, which come sorted by name."""
    peers = [
        node_pb2.Peer(name=name, address=address, witness_port=port)
        for name, address, port in witnesses[: limit + 1]
        if name != node_name
    ]
    return node_pb2.PeerList(peers=peers[:limit], cluster_size=cluster_size)


def peer_list_news(sent: node_pb2.PeerList | None, new: node_pb2.PeerList) -> bool:
    """Whether an agent that has `sent` must be told `new`.

    Every join changes the cluster's size, and a size change went to every session:
    a join storm of N nodes sent each of them about N peer lists (coalesced to one a
    second, still one message per session per second while nodes kept joining: as
    many as the heartbeats). An agent listing at least WITNESS_SAMPLE_MIN peers in a
    larger cluster judges by its listed peers alone (agent/fencing.py,
    witness_verdict), so a size change that keeps the cluster larger than the list
    changes nothing it decides: not sent. The same peers and sizes that matter: sent.
    """
    if sent is None or list(sent.peers) != list(new.peers):
        return True
    if sent.cluster_size == new.cluster_size:
        return False
    listed = len(new.peers)
    return not (
        listed >= WITNESS_SAMPLE_MIN
        and sent.cluster_size > listed + 1
        and new.cluster_size > listed + 1
    )


def peer_broadcast_news(
    told: tuple[Sequence[tuple[str, str, int]], int] | None,
    now: tuple[Sequence[tuple[str, str, int]], int],
    limit: int,
) -> bool:
    """Whether a witness-list change can give any session a new peer list.

    Every session's list is the first `limit` + 1 rows (by name) minus itself
    (`peers_to_proto`), so when those rows are the same and the cluster's size changed
    only where no agent's verdict looks at it (`peer_list_news`), no session would
    send anything: waking all of them once a second while nodes keep joining cost as
    much as their heartbeats (5,000 sessions woken to find nothing to say).
    """
    if told is None:
        return True
    (old_head, old_size), (new_head, new_size) = told, now
    if list(old_head) != list(new_head):
        return True
    listed = min(len(new_head) - 1, limit)
    return not (listed >= WITNESS_SAMPLE_MIN and old_size > limit + 1 and new_size > limit + 1)


def pod_status_from_proto(report: node_pb2.PodStatusReport) -> PodStatus:
    """The status an agent reported. The strings many pods repeat (the node's address, an
    image and its id, a container's name, a port's "80/TCP", a reason) are interned: each
    report decodes fresh copies, and the master keeps every pod's last status: 343 bytes a pod
    less retained (1,009 -> 666 for a one-container pod), 16 MiB at 50,000 pods. Interned
    strings are freed with their last holder, so an agent cannot grow the table.

    Every pod's reports pass here (50,000 at apply): the dataclasses are built with
    positional arguments in their fields' order (a frozen dataclass takes keywords at twice
    the cost: ~1.5 us a container, ~1 us a status), and a port map is walked only when it has
    ports. tests/unit/test_report_conversion.py holds each field to its proto field."""
    containers = tuple(
        [
            ContainerStatus(
                intern(c.name[:253]),
                _CONTAINER_STATES.get(c.state, ContainerState.WAITING),
                intern(c.reason[:128]),
                c.message[:1024],
                c.ready,
                max(0, c.restart_count),
                c.container_id[:128],
                intern(c.image[:512]),
                c.exit_code,
                c.started_at,
                c.image_note[:512],
                intern(c.image_id[:512]),
            )
            for c in report.containers
        ]
    )
    ports = report.port_map
    pod_ip = report.pod_ip
    return PodStatus(
        _PHASES.get(report.phase, PodPhase.UNKNOWN),
        intern(report.reason[:128]),
        report.message[:1024],
        intern(report.host_ip[:64]),
        {intern(k[:32]): _clamp(v, 65535) for k, v in ports.items()} if ports else {},
        containers,
        report.ready,
        report.started_at,
        # Only an IP address is kept: it ends up in the node proxies' kernel rules.
        pod_ip if is_ip(pod_ip) else "",
    )


def pod_report_from_proto(report: node_pb2.PodStatusReport) -> PodReport:
    """A pod's report (positional, as pod_status_from_proto builds its parts)."""
    return PodReport(
        report.pod_name[:253],
        report.epoch,
        pod_status_from_proto(report),
        report.removed,
        report.namespace[:63] or DEFAULT_NAMESPACE,
    )


def _probe_to_proto(p: Probe | None) -> node_pb2.Probe | None:
    if p is None:
        return None
    return node_pb2.Probe(
        kind=p.kind,
        port=p.port,
        path=p.path,
        scheme=p.scheme,
        http_headers=[node_pb2.HTTPHeader(name=h.name, value=h.value) for h in p.http_headers],
        command=list(p.command),
        initial_delay_seconds=p.initial_delay_seconds,
        period_seconds=p.period_seconds,
        timeout_seconds=p.timeout_seconds,
        success_threshold=p.success_threshold,
        failure_threshold=p.failure_threshold,
    )


def _probe_from_proto(
    c: node_pb2.ContainerSpec, field: Literal["readiness_probe", "liveness_probe"]
) -> Probe | None:
    if not c.HasField(field):
        return None
    p: node_pb2.Probe = getattr(c, field)
    kind = _PROBE_KINDS.get(p.kind)
    if kind is None:
        return None
    return Probe(
        kind=kind,
        port=p.port,
        path=p.path,
        scheme=p.scheme,
        http_headers=tuple(HTTPHeader(h.name, h.value) for h in p.http_headers),
        command=tuple(p.command),
        initial_delay_seconds=p.initial_delay_seconds,
        period_seconds=p.period_seconds,
        timeout_seconds=p.timeout_seconds,
        success_threshold=p.success_threshold,
        failure_threshold=p.failure_threshold,
    )


# A pod's containers -> their resolved environments (master/app/podenv.py).
EnvResolver = Callable[[Pod, Container], ResolvedEnv]


def _plain_env(pod: Pod, c: Container) -> ResolvedEnv:
    """Without a resolver: plain values only (references would need the cluster's objects)."""
    return ResolvedEnv(tuple(ResolvedVar(e.name, e.value, False) for e in c.env))


def _security_to_proto(
    pod: SecurityContext | None, container: SecurityContext | None
) -> node_pb2.ContainerSecurity | None:
    """The container's securityContext as it applies; None when neither level sets one."""
    if pod is None and container is None:
        return None
    e = effective(pod, container)
    groups = [*(e.supplemental_groups or ()), *(() if e.fs_group is None else (e.fs_group,))]
    return node_pb2.ContainerSecurity(
        run_as_user=e.run_as_user,
        run_as_group=e.run_as_group,
        run_as_non_root=bool(e.run_as_non_root),
        read_only_root_filesystem=bool(e.read_only_root_filesystem),
        supplemental_groups=groups,
    )


def _container_to_proto(
    c: Container, env: ResolvedEnv, pod_security: SecurityContext | None = None
) -> node_pb2.ContainerSpec:
    return node_pb2.ContainerSpec(
        name=c.name,
        image=c.image,
        command=list(c.command),
        args=list(c.args),
        env=[
            node_pb2.EnvVar(name=v.name, value=v.value, from_source=v.from_source)
            for v in env.variables
        ],
        config_error=env.error,
        ports=[
            node_pb2.ContainerPort(
                container_port=p.container_port,
                protocol=p.protocol,
                name=p.name,
                host_port=p.host_port,
            )
            for p in c.ports
        ],
        requests=resources_to_proto(c.requests),
        limits=resources_to_proto(c.limits),
        image_pull_policy=c.image_pull_policy,
        readiness_probe=_probe_to_proto(c.readiness_probe),
        liveness_probe=_probe_to_proto(c.liveness_probe),
        volume_mounts=[
            node_pb2.VolumeMount(
                name=m.name, mount_path=m.mount_path, sub_path=m.sub_path, read_only=m.read_only
            )
            for m in c.volume_mounts
        ],
        stdin=c.stdin,
        stdin_once=c.stdin_once,
        tty=c.tty,
        security=_security_to_proto(pod_security, c.security_context),
    )


# A pod's configMap/secret volumes -> their files (master/app/podvolumes.py).
FileResolver = Callable[[Pod, Volume], ResolvedFiles]


def _no_files(pod: Pod, v: Volume) -> ResolvedFiles:
    return ResolvedFiles()


def _volume_to_proto(v: Volume, resolved: ResolvedFiles) -> node_pb2.Volume:
    return node_pb2.Volume(
        files=[
            node_pb2.VolumeFile(path=f.path, content=f.content, mode=f.mode) for f in resolved.files
        ],
        name=v.name,
        source=v.source,
        medium=v.medium,
        size_limit_bytes=v.size_limit_bytes,
        path=v.path,
        host_path_type=v.host_path_type,
        claim_name=v.claim_name,
        read_only=v.read_only,
        volume_name=v.volume_name,
        claim_bytes=resolved.claim_bytes,
    )


# A pod -> its Service environment variables (master/app/servicenv.py).
ServiceEnv = Callable[[Pod], Sequence[tuple[str, str]]]


def _no_services(pod: Pod) -> Sequence[tuple[str, str]]:
    return ()


def pod_dns_to_proto(spec: PodSpec) -> node_pb2.PodDNS:
    config = spec.dns_config
    if config is None:
        return node_pb2.PodDNS(policy=spec.dns_policy or "")
    return node_pb2.PodDNS(
        policy=spec.dns_policy or "",
        nameservers=list(config.nameservers),
        searches=list(config.searches),
        options=[
            node_pb2.DNSOption(name=o.name, value=o.value or "", has_value=o.value is not None)
            for o in config.options
        ],
    )


def pod_spec_to_proto(
    pod: Pod,
    resolve: EnvResolver = _plain_env,
    files: FileResolver = _no_files,
    services: ServiceEnv = _no_services,
) -> node_pb2.PodSpec:
    spec = pod.spec
    return node_pb2.PodSpec(
        containers=[
            _container_to_proto(c, resolve(pod, c), spec.security_context) for c in spec.containers
        ],
        restart_policy=spec.restart_policy,
        # A delete may shorten it (gracePeriodSeconds); only a stopping pod uses it.
        termination_grace_period_seconds=pod.stop_grace_seconds,
        volumes=[_volume_to_proto(v, files(pod, v)) for v in spec.volumes],
        service_env=[
            node_pb2.EnvVar(name=name, value=value, from_source=True)
            for name, value in services(pod)
        ],
        dns=pod_dns_to_proto(spec),
        fs_group=spec.security_context.fs_group if spec.security_context else None,
        fs_group_change_policy=(
            spec.security_context.fs_group_change_policy or "" if spec.security_context else ""
        ),
    )


# The spec messages assignments were made with, by the identity of the pod's spec (kept
# alive beside it), each with the rest it was made of: `_assigned_spec`.
_SPEC_MESSAGES: dict[int, tuple[PodSpec, tuple[object, ...], node_pb2.PodSpec]] = {}
SPEC_MESSAGES_MEMO = 256


def _assigned_spec(
    pod: Pod, resolve: EnvResolver, files: FileResolver, services: ServiceEnv
) -> node_pb2.PodSpec:
    """`pod_spec_to_proto`, remembered: the message is made of the spec, what the resolvers
    say for this pod (its containers' variables, its volumes' files, its Service variables)
    and its stop grace, and the pods of one Deployment share their spec object and nearly
    always the rest, so a burst of 50,000 converts each spec once instead of once a pod
    (~20 us of a ~28 us assignment). The resolvers still run for every pod; a pod whose
    answers differ gets a message of its own. Only ever read: an assignment built with it
    holds a copy (protobuf copies a submessage given to a constructor)."""
    spec = pod.spec
    inputs = (
        tuple(resolve(pod, c) for c in spec.containers),
        tuple(files(pod, v) for v in spec.volumes),
        tuple(services(pod)),
        pod.stop_grace_seconds,
    )
    found = _SPEC_MESSAGES.get(id(spec))
    if found is not None and found[0] is spec and found[1] == inputs:
        return found[2]
    # (Handed to pod_spec_to_proto in the order it asks: each container, each volume once.)
    envs, resolved, service_env = iter(inputs[0]), iter(inputs[1]), inputs[2]
    message = pod_spec_to_proto(
        pod, lambda p, c: next(envs), lambda p, v: next(resolved), lambda p: service_env
    )
    if len(_SPEC_MESSAGES) >= SPEC_MESSAGES_MEMO:
        _SPEC_MESSAGES.clear()
    _SPEC_MESSAGES[id(spec)] = (spec, inputs, message)
    return message


def assignment_to_proto(
    pod: Pod,
    stop: bool,
    resolve: EnvResolver = _plain_env,
    files: FileResolver = _no_files,
    services: ServiceEnv = _no_services,
) -> node_pb2.PodAssignment:
    return node_pb2.PodAssignment(
        name=pod.meta.name,
        epoch=pod.epoch,
        labels=pod.meta.labels,
        owner=pod.owner,
        spec=_assigned_spec(pod, resolve, files, services),
        stop=stop,
        namespace=pod.meta.namespace,
        uid=pod.meta.uid,
        # The status a bind starts with has no containers: these are this node's.
        seen=[
            node_pb2.ContainerSeen(
                name=c.name, restart_count=c.restart_count, container_id=c.container_id
            )
            for c in pod.status.container_statuses
            if c.restart_count or c.container_id
        ],
    )


# One assignment chunk's pods, in bytes: far below any message limit, so no legal
# set of pods (each at most a few MiB) ever makes a message too big to send.
CHUNK_BYTES = 4 * 1024 * 1024


def _sized(
    pods: Sequence[node_pb2.PodAssignment], limit: int
) -> list[list[node_pb2.PodAssignment]]:
    """`pods` in runs of at most about `limit` bytes each (one pod per run at least)."""
    runs: list[list[node_pb2.PodAssignment]] = []
    current: list[node_pb2.PodAssignment] = []
    size = 0
    for pod in pods:
        pod_size = pod.ByteSize()
        if current and size + pod_size > limit:
            runs.append(current)
            current, size = [], 0
        current.append(pod)
        size += pod_size
    runs.append(current)
    return runs


def chunk_assignments(
    msg: node_pb2.PodAssignments, limit: int = CHUNK_BYTES
) -> list[node_pb2.PodAssignments]:
    """The set as messages of at most about `limit` bytes each (one pod per chunk at least).
    A set within the limit goes as it is (sizing every pod was a fifth of a set's cost)."""
    if msg.ByteSize() <= limit:
        return [msg]
    runs = _sized(msg.pods, limit)
    return [
        node_pb2.PodAssignments(
            revision=msg.revision, pods=run, more=i < len(runs) - 1, sequence=msg.sequence
        )
        for i, run in enumerate(runs)
    ]


def assignment_changes_to_proto(
    revision: int,
    first: int,
    changed: list[Pod],
    removed: list[str],
    released: Callable[[Pod], bool],
    resolve: EnvResolver = _plain_env,
    files: FileResolver = _no_files,
    services: ServiceEnv = _no_services,
    limit: int = CHUNK_BYTES,
) -> list[node_pb2.PodAssignmentChanges]:
    """The changes of a node's set as messages numbered from `first` on, each of at most
    about `limit` bytes (one pod at least): `changed` whole (a stopping pod with its stop
    order once `released`), `removed` by key ("namespace/name"), the removals first."""
    pods = [
        assignment_to_proto(
            p, bool(p.deletion_requested_at) and released(p), resolve, files, services
        )
        for p in changed
    ]
    gone = [
        node_pb2.PodKey(namespace=ns, name=name)
        for ns, _, name in (k.partition("/") for k in removed)
    ]
    runs = _sized(pods, limit) if pods else [[]]
    return [
        node_pb2.PodAssignmentChanges(
            sequence=first + i, revision=revision, pods=run, removed=gone if i == 0 else []
        )
        for i, run in enumerate(runs)
    ]


def assignments_to_proto(
    revision: int,
    pods: list[Pod],
    released: Callable[[Pod], bool],
    resolve: EnvResolver = _plain_env,
    files: FileResolver = _no_files,
    services: ServiceEnv = _no_services,
    sequence: int = 0,
) -> node_pb2.PodAssignments:
    """The node's assignment set; a stopping pod gets its stop order once `released`; each
    container's environment as `resolve` gives it (values for this node only). `sequence`:
    its number in the session (master/app/assignment_feed.py)."""
    ordered = sorted(pods, key=lambda p: (p.meta.namespace, p.meta.name))
    return node_pb2.PodAssignments(
        revision=revision,
        sequence=sequence,
        pods=[
            assignment_to_proto(
                p, bool(p.deletion_requested_at) and released(p), resolve, files, services
            )
            for p in ordered
        ],
    )


def container_from_proto(c: node_pb2.ContainerSpec) -> Container:
    """Inverse of _container_to_proto (used by tests and hollow nodes)."""
    return Container(
        name=c.name,
        image=c.image,
        command=tuple(c.command),
        args=tuple(c.args),
        env=tuple(EnvVar(e.name, e.value) for e in c.env if not e.from_source),
        ports=tuple(
            ContainerPort(p.container_port, p.protocol, p.name, p.host_port) for p in c.ports
        ),
        requests=resources_from_proto(c.requests),
        limits=resources_from_proto(c.limits),
        image_pull_policy=c.image_pull_policy,
        readiness_probe=_probe_from_proto(c, "readiness_probe"),
        liveness_probe=_probe_from_proto(c, "liveness_probe"),
        stdin=c.stdin,
        stdin_once=c.stdin_once,
        tty=c.tty,
    )
