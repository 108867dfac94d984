"""The agent's own data: pod assignments, container facts and status reports.

The agent never imports the master; these frozen dataclasses mirror what
protos/node.proto carries (agent/convert.py translates at the gRPC edge) so the
decision code (agent/sync.py, agent/status.py) works over plain data. Units are
the wire's: CPU in millicores, memory in bytes, times in wall-clock seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from kernel.identity_memo import IdentityMemo, by_identity
from kernel.podspec import ContainerStatus as ContainerStatus
from kernel.podspec import HTTPHeader as HTTPHeader
from kernel.podspec import Probe as Probe
from kernel.podspec import VolumeMount as VolumeMount


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_millis: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str = ""
    # The value came from a ConfigMap, Secret or field: final (not $(VAR)-expanded), and
    # left out of the spec hash, so a changed ConfigMap never restarts a container.
    from_source: bool = False


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    protocol: str = "TCP"
    name: str = ""
    # 0: publish on an ephemeral port of the advertise address.
    host_port: int = 0

    @property
    def key(self) -> str:
        """The port_map key, "80/TCP"."""
        return f"{self.container_port}/{self.protocol.upper()}"


@dataclass(frozen=True, slots=True)
class VolumeFile:
    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class Volume:
    """A pod volume as the master resolved it (the wire's Volume)."""

    name: str
    # emptyDir | hostPath | persistentVolumeClaim
    source: str
    medium: str = ""
    size_limit_bytes: int = 0
    path: str = ""
    host_path_type: str = ""
    claim_name: str = ""
    read_only: bool = False
    # persistentVolumeClaim: the Docker volume on this node that holds the claim's data.
    volume_name: str = ""
    # configMap / secret: the files, as the master resolved them for this node.
    files: tuple[VolumeFile, ...] = ()
    # persistentVolumeClaim: the claim's requested bytes now (0: unknown).
    claim_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Security:
    """Who a container's process is: its securityContext merged with its pod's (the wire's
    ContainerSecurity); agent/security.py turns it into the engine's user and groups."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    read_only_root_filesystem: bool = False
    # The pod's supplementalGroups and fsGroup.
    supplemental_groups: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    requests: Resources = Resources()
    limits: Resources = Resources()
    image_pull_policy: str = "IfNotPresent"
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    volume_mounts: tuple[VolumeMount, ...] = ()
    # Set while a ConfigMap, Secret or key the container needs is missing: why.
    config_error: str = ""
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    security: Security | None = None


@dataclass(frozen=True, slots=True)
class DNSOption:
    name: str
    # None: an option without a value ("rotate").
    value: str | None = None


@dataclass(frozen=True, slots=True)
class PodDNS:
    """spec.dnsPolicy and spec.dnsConfig as the master sent them (agent/poddns.py decides)."""

    # ClusterFirst | ClusterFirstWithHostNet | Default | None
    policy: str = "ClusterFirst"
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[DNSOption, ...] = ()


@dataclass(frozen=True, slots=True)
class PodSpec:
    containers: tuple[ContainerSpec, ...]
    restart_policy: str = "Always"
    termination_grace_period_seconds: int = 30
    volumes: tuple[Volume, ...] = ()
    # The Service variables every container starts with (its own env wins); not part of
    # any container's identity, so a new Service restarts nothing.
    service_env: tuple[EnvVar, ...] = ()
    dns: PodDNS = PodDNS()
    # spec.securityContext.fsGroup: the group owning the pod's volumes (None: untouched).
    fs_group: int | None = None
    # spec.securityContext.fsGroupChangePolicy: when the group is given to a volume's
    # files (agent/volume_owner.py).
    fs_group_change_policy: str = "Always"


@dataclass(frozen=True, slots=True)
class ContainerSeen:
    """One container of a pod as the master's copy of its status has it."""

    restart_count: int = 0
    container_id: str = ""


@dataclass(frozen=True, slots=True)
class PodAssignment:
    """One pod the master wants on this node (or wants stopped, when `stop`).

    `name` is the pod's `kernel.names.pod_ref`: its name in "default", "<ns>/<name>" in
    any other namespace, so pods of two namespaces never meet in the agent's tables."""

    name: str
    epoch: int
    spec: PodSpec
    labels: Mapping[str, str] = field(default_factory=dict)
    owner: str = ""
    stop: bool = False
    # The pod's namespace ("": default), for its DNS search domains.
    namespace: str = ""
    # metadata.uid, for messages that name the pod as the kubelet does.
    uid: str = ""
    # Container name -> how the pod's status at the master last had it (this node's
    # report): where agent/sync.py's count starts for a container it knows nothing of.
    seen: Mapping[str, ContainerSeen] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assignments:
    """The complete set of pods for this node at one master revision."""

    revision: int
    pods: tuple[PodAssignment, ...]


# Probes are run by the agent, not by the container: changing one must not restart it;
# nor may a missing ConfigMap (config_error) stop one that runs.
_NOT_HASHED = ("readiness_probe", "liveness_probe", "config_error")


def _hashed_env(var: dict[str, object]) -> dict[str, object]:
    """An env entry as hashed: a resolved value (ConfigMap, Secret, field) counts only by
    name, so changing the ConfigMap restarts nothing (as in Kubernetes); plain entries
    hash exactly as before the field existed, so upgrading the agent restarts nothing."""
    if var.get("from_source"):
        return {"name": var["name"], "from_source": True}
    return {"name": var["name"], "value": var["value"]}


_HASHED_WHEN_SET = ("volume_mounts", "stdin", "stdin_once", "tty", "security")


# Each spec's hash, by the spec's identity: every pass hashes every assigned spec three
# times (sync, probes, the reports), and so does a die before its restart's start is sent
# (the reports: 4 ms at 100 pods). A spec is frozen, and lives as long as its assignment
# set; the memo holds each spec it answers for, so no id is reused while remembered.
_HASHES: IdentityMemo[str] = {}
_HASHES_MAX = 1 << 16


def spec_hash(spec: ContainerSpec) -> str:
    """A stable short hash of a container spec: a running container with another hash is stale."""
    return by_identity(_HASHES, spec, _spec_digest, spec, _HASHES_MAX)


def _spec_digest(spec: ContainerSpec) -> str:
    # Fields added later count only when set, so an agent upgrade restarts nothing.
    fields = {
        k: v
        for k, v in asdict(spec).items()
        if k not in _NOT_HASHED and not (k in _HASHED_WHEN_SET and not v)
    }
    fields["env"] = [_hashed_env(e) for e in fields["env"]]
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class PodStatusReport:
    """What the agent tells the master about one pod (PodStatusReport on the wire).

    `pod_name` is the pod's `kernel.names.pod_ref` (split again on the wire)."""

    pod_name: str
    epoch: int
    phase: str = "Pending"
    reason: str = ""
    message: str = ""
    host_ip: str = ""
    port_map: Mapping[str, int] = field(default_factory=dict)
    containers: tuple[ContainerStatus, ...] = ()
    ready: bool = False
    started_at: float = 0.0
    removed: bool = False
    # The pod's address on its machine's container network, reachable from this machine
    # ("" if none): node proxies here send UDP to it (protos/node.proto).
    pod_ip: str = ""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    address: str
    capacity: Resources
    allocatable: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    agent_version: str = ""
    os: str = ""
    kernel: str = ""
    container_runtime: str = ""
    # The port of this agent's WitnessService on `address` (0: it serves none).
    witness_port: int = 0


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """Another node's witness (agent/witness.py), from the master's peer list."""

    name: str
    address: str
    port: int
