"""The master's object model: plain frozen dataclasses for every kind it stores.

Everything the control plane decides is decided over these types: manifests are
parsed into them (master/manifest), the store persists them (master/store), the
scheduler and controllers read them and return new ones, and the API layer
renders them as Kubernetes-shaped dicts (master/api/render.py). Nothing here does
I/O. Objects are immutable; a change is `dataclasses.replace(obj, ...)` followed
by a store write that bumps `meta.resource_version`.

Units are normalised at parse time so the core never re-parses quantities:
CPU in millicores, memory in bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from kernel.names import CLUSTER_SCOPED as CLUSTER_SCOPED
from kernel.names import DEFAULT_NAMESPACE as DEFAULT_NAMESPACE
from kernel.names import pod_ref as kernel_pod_ref
from kernel.names import split_pod_ref
from kernel.podspec import ContainerState as ContainerState
from kernel.podspec import ContainerStatus as ContainerStatus
from kernel.podspec import HTTPHeader as HTTPHeader
from kernel.podspec import Probe as Probe
from kernel.podspec import ProbeKind as ProbeKind
from kernel.podspec import VolumeMount as VolumeMount


# The closed sets of values fields take. StrEnum members are strings (they compare,
# hash and serialise as their value), so templates hash as before and stored
# records read back unchanged; the type says which values exist.
class DeploymentStrategy(StrEnum):
    ROLLING_UPDATE = "RollingUpdate"
    RECREATE = "Recreate"


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    LOAD_BALANCER = "LoadBalancer"
    NODE_PORT = "NodePort"


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


@dataclass(frozen=True, slots=True)
class ManagedFieldsEntry:
    """The fields one manager owns (an entry of Kubernetes' metadata.managedFields).

    Written by master/api/managedfields.py on every write through an API; the
    fields are kept as their FieldsV1 JSON text, which only that module reads."""

    manager: str
    operation: str  # "Apply" (server-side apply) or "Update" (any other write)
    api_version: str
    time: float
    fields_v1: str
    subresource: str = ""


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """Identity and bookkeeping common to every kind (Kubernetes' metadata)."""

    name: str
    uid: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resource_version: int = 0
    generation: int = 1
    created_at: float = 0.0
    # Meaningful for namespaced kinds only (cluster-scoped ones ignore it: see
    # `key_name`). Objects written before namespaces existed read back as "default".
    namespace: str = DEFAULT_NAMESPACE
    # Who set which fields (server-side apply's bookkeeping); never part of desired state.
    managed_fields: tuple[ManagedFieldsEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Resources:
    """A CPU/memory amount: millicores and bytes."""

    cpu_millis: int = 0
    memory_bytes: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis - other.cpu_millis, self.memory_bytes - other.memory_bytes)


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    protocol: str = "TCP"
    name: str = ""
    # 0 means "let the agent publish on an ephemeral host port".
    host_port: int = 0


@dataclass(frozen=True, slots=True)
class EnvVarSource:
    """Where an env var's value comes from (Kubernetes' valueFrom), resolved by the master
    when it sends the pod to its node (master/app/podenv.py)."""

    # configMapKeyRef | secretKeyRef | fieldRef | resourceFieldRef
    kind: str
    # configMapKeyRef, secretKeyRef: the object's name and key; optional: a missing
    # object or key leaves the variable out instead of holding the container back.
    name: str = ""
    key: str = ""
    optional: bool = False
    # fieldRef: metadata.name, metadata.labels['app'], status.podIP ...
    field_path: str = ""
    # resourceFieldRef: limits.cpu ..., the container (default: this one) and divisor.
    resource: str = ""
    container_name: str = ""
    divisor: str = ""


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str = ""
    value_from: EnvVarSource | None = None


@dataclass(frozen=True, slots=True)
class EnvFromSource:
    """Every key of a ConfigMap or Secret as a variable (Kubernetes' envFrom)."""

    # configMapRef | secretRef
    kind: str
    name: str
    prefix: str = ""
    optional: bool = False


@dataclass(frozen=True, slots=True)
class KeyToPath:
    """One key of a ConfigMap or Secret volume as a file (`items[]`); mode 0: the default."""

    key: str
    path: str
    mode: int = 0


@dataclass(frozen=True, slots=True)
class DownwardFile:
    """One file of a downwardAPI volume or projection: a field of the pod (fieldRef, e.g.
    metadata.labels) or a container's resource (resourceFieldRef), as the env has them."""

    path: str
    ref: EnvVarSource
    mode: int = 0


@dataclass(frozen=True, slots=True)
class ProjectedSource:
    """One source of a projected volume: a ConfigMap's or Secret's keys, or downward files."""

    # configMap | secret | downwardAPI
    source: str
    object_name: str = ""
    items: tuple[KeyToPath, ...] = ()
    optional: bool = False
    fields: tuple[DownwardFile, ...] = ()


@dataclass(frozen=True, slots=True)
class Volume:
    """One pod volume (Kubernetes' spec.volumes[]) and where its files live on the node.

    `source` is emptyDir (a Docker volume that lives and dies with the pod, or a
    tmpfs with `medium` Memory), hostPath (a directory or file of the node),
    persistentVolumeClaim (the node-local Docker volume bound to the claim; the
    master fills `volume_name` when it binds the pod, so an agent needs no lookup),
    or configMap / secret / projected / downwardAPI (files the master sends with the
    assignment and the agent keeps on a tmpfs, rewritten when their objects change;
    a downwardAPI volume is a projection of one downwardAPI source).
    """

    name: str
    source: str
    medium: str = ""
    size_limit_bytes: int = 0
    path: str = ""
    host_path_type: str = ""
    claim_name: str = ""
    read_only: bool = False
    volume_name: str = ""
    # configMap / secret: the object, which keys as which files (all when empty), modes.
    object_name: str = ""
    items: tuple[KeyToPath, ...] = ()
    default_mode: int = 0o644
    optional: bool = False
    # projected / downwardAPI: the sources, in order (a later file of the same path wins).
    sources: tuple[ProjectedSource, ...] = ()


@dataclass(frozen=True, slots=True)
class SecurityContext:
    """The securityContext fields pinnace applies, at pod level (spec.securityContext:
    no read_only_root_filesystem) or container level (no fs_group nor
    supplemental_groups); None: not set there (a container's own wins over its pod's)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool | None = None
    read_only_root_filesystem: bool | None = None
    # The group owning the pod's volumes, added to every container's groups.
    fs_group: int | None = None
    fs_group_change_policy: str | None = None
    supplemental_groups: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    requests: Resources = Resources()
    limits: Resources = Resources()
    image_pull_policy: str = "IfNotPresent"
    env_from: tuple[EnvFromSource, ...] = ()
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    volume_mounts: tuple[VolumeMount, ...] = ()
    # Keep the main process's stdin open (for `kubectl attach -i`); close it after the
    # first attach ends (stdin_once); give it a terminal (tty).
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    security_context: SecurityContext | None = None


@dataclass(frozen=True, slots=True)
class DNSOption:
    """One resolver option of a pod's dnsConfig (`ndots` with value "5", `rotate` without)."""

    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class PodDNSConfig:
    """A pod's spec.dnsConfig: merged into what its dnsPolicy gives (agent/poddns.py)."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[DNSOption, ...] = ()


@dataclass(frozen=True, slots=True)
class PodSpec:
    """What a pod runs; the pod template's spec and every pod's spec."""

    containers: tuple[Container, ...]
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    termination_grace_period_seconds: int = 30
    # Accepted and shown; pinnace mounts no service account token.
    service_account_name: str = ""
    volumes: tuple[Volume, ...] = ()
    # None where the manifest says nothing (Kubernetes' defaults: links on, ClusterFirst),
    # so templates written before these fields existed keep their hash.
    enable_service_links: bool | None = None
    # ClusterFirst | ClusterFirstWithHostNet | Default | None
    dns_policy: str | None = None
    dns_config: PodDNSConfig | None = None
    security_context: SecurityContext | None = None

    def claim_names(self) -> tuple[str, ...]:
        """The PersistentVolumeClaims this pod uses, in spec order."""
        return tuple(v.claim_name for v in self.volumes if v.source == "persistentVolumeClaim")

    def requests(self) -> Resources:
        total = Resources()
        for c in self.containers:
            total = total + c.requests
        return total

    def host_ports(self) -> frozenset[tuple[int, str]]:
        """Host ports this pod must own exclusively on its node (explicit hostPort only)."""
        return frozenset(
            (p.host_port, p.protocol) for c in self.containers for p in c.ports if p.host_port
        )


@dataclass(frozen=True, slots=True)
class PodTemplate:
    labels: Mapping[str, str]
    spec: PodSpec


@dataclass(frozen=True, slots=True)
class RollingUpdate:
    # Kept as given ("25%" or "1"); resolved against replicas by the controller.
    max_surge: str = "25%"
    max_unavailable: str = "25%"


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    observed_generation: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    # Why the rollout cannot progress (a new pod cannot pull its image, crash-loops
    # ...); empty while it progresses or is complete.
    stalled_reason: str = ""


@dataclass(frozen=True, slots=True)
class DeploymentRevision:
    """One pod template a deployment has rolled out (`rollout history`, `rollout undo`)."""

    revision: int
    template_hash: str
    template: PodTemplate
    created_at: float = 0.0
    change_cause: str = ""


@dataclass(frozen=True, slots=True)
class Deployment:
    meta: ObjectMeta
    replicas: int
    selector: Mapping[str, str]
    template: PodTemplate
    strategy: DeploymentStrategy = DeploymentStrategy.ROLLING_UPDATE
    rolling_update: RollingUpdate = RollingUpdate()
    status: DeploymentStatus = DeploymentStatus()
    # Oldest first; the last entry is the current template.
    history: tuple[DeploymentRevision, ...] = ()

    kind = "Deployment"

    @property
    def revision(self) -> int:
        return self.history[-1].revision if self.history else 0


# spec.clusterIP of a headless Service.
HEADLESS = "None"
# Kubernetes' default --service-cluster-ip-range.
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"


@dataclass(frozen=True, slots=True)
class NodePortRange:
    """--service-node-port-range (master/app/nodeport.py): inclusive bounds."""

    first: int = 30000
    last: int = 32767

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


DEFAULT_NODE_PORTS = NodePortRange()


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    target_port: str  # a number as text, or a named container port
    protocol: str = "TCP"
    name: str = ""
    node_port: int = 0
    # What the port speaks (Kubernetes' appProtocol): "http" lets the load balancer
    # retry idempotent requests at layer 7; empty means "decide from name and port".
    app_protocol: str = ""


@dataclass(frozen=True, slots=True, order=True)
class ProxyProblem:
    """A port of a Service that one node's proxy cannot serve (its agent said why)."""

    node: str
    # The Service port's name, or its number when unnamed.
    port: str
    reason: str
    message: str
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class Service:
    meta: ObjectMeta
    selector: Mapping[str, str]
    ports: tuple[ServicePort, ...]
    type: ServiceType = ServiceType.CLUSTER_IP
    ingress_ip: str = ""
    # spec.clusterIP: the Service's own virtual address from the service range
    # (master/app/clusterip.py); "None" when headless. A parsed manifest holds what it
    # asked for ("" for any); the stored Service holds what it got.
    cluster_ip: str = ""
    # clusterIP: None -- no address, no proxy; clients find the pods through its endpoints.
    headless: bool = False
    # Why the load balancer does not serve this Service ("" while it does): a reason
    # (PortConflict, ...), one sentence naming the object in the way, and since when.
    lb_reason: str = ""
    lb_message: str = ""
    lb_since: float = 0.0
    # spec.loadBalancerIP: the external address asked for ("" lets the pool choose).
    load_balancer_ip: str = ""
    # Nodes whose proxy cannot serve a port of this Service, as their agents last said
    # (master/app/proxyproblems.py); sorted, empty while every node serves it.
    proxy_problems: tuple[ProxyProblem, ...] = ()
    # spec.publishNotReadyAddresses: its pods are endpoints (names, proxied) while not
    # ready yet, as Kubernetes' endpoints controller then lists them.
    publish_not_ready: bool = False
    # spec.allocateLoadBalancerNodePorts (LoadBalancer only): False gives the Service no
    # node ports but those it asks for by number, as in Kubernetes; None: not given (true).
    allocate_node_ports: bool | None = None

    kind = "Service"


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


# The reason the scheduler gives a pod it found no node for (what `get pods` shows, and what
# tells the store's hold that no binding is coming: master/write_hold.py).
POD_UNSCHEDULABLE = "Unschedulable"


@dataclass(frozen=True, slots=True)
class PodStatus:
    phase: PodPhase = PodPhase.PENDING
    reason: str = ""
    message: str = ""
    host_ip: str = ""
    # host port for each declared container port, "containerPort/protocol" -> host port
    port_map: Mapping[str, int] = field(default_factory=dict)
    container_statuses: tuple[ContainerStatus, ...] = ()
    ready: bool = False
    started_at: float = 0.0
    # The pod's address on its machine's container network (the agent's report; "" none):
    # node proxies on that machine send UDP there (master/lb/servicetable.py).
    pod_ip: str = ""


@dataclass(frozen=True, slots=True)
class Pod:
    meta: ObjectMeta
    spec: PodSpec
    # The deployment that owns it and the template hash it was made from.
    owner: str = ""
    template_hash: str = ""
    node_name: str = ""
    # Bumped on every (re)assignment, so an agent can tell stale orders from fresh.
    epoch: int = 0
    # Set when the pod is to be stopped (scale down, rollout, delete); the agent
    # stops it and reports, then the master removes it.
    deletion_requested_at: float = 0.0
    # A delete's gracePeriodSeconds: how long the agent waits between SIGTERM and SIGKILL
    # when it stops the pod (-1: the pod's terminationGracePeriodSeconds).
    deletion_grace_seconds: int = -1
    status: PodStatus = PodStatus()

    kind = "Pod"

    @property
    def stop_grace_seconds(self) -> int:
        """The grace period the agent stops this pod with."""
        if self.deletion_requested_at and self.deletion_grace_seconds >= 0:
            return self.deletion_grace_seconds
        return self.spec.termination_grace_period_seconds

    @property
    def owner_key(self) -> str:
        """The owner within its namespace (`ref`: "owner" in default, else "ns/owner"; ""
        without one): the owners of two namespaces never mix, whatever their names."""
        return ref(self.meta.namespace, self.owner) if self.owner else ""


# The Ready condition's reasons. Unknown: the agent is silent, but the node is
# believed alive (it said it will be back, its pods still answer, or too many nodes
# went silent at once to blame them): its pods stay and keep serving.
NODE_READY = "NodeReady"
NODE_NOT_READY = "NodeNotReady"
NODE_UNKNOWN = "NodeStatusUnknown"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    ready: bool = False
    reason: str = ""
    message: str = ""
    last_heartbeat: float = 0.0
    last_transition: float = 0.0
    agent_version: str = ""
    os: str = ""
    kernel: str = ""
    container_runtime: str = ""
    # When the agent's session stream broke (0: connected). A suspicion only: the
    # node takes no new pods until its agent is back; the lease decides NotReady.
    session_lost_at: float = 0.0

    @property
    def unknown(self) -> bool:
        return not self.ready and self.reason == NODE_UNKNOWN

    @property
    def serving(self) -> bool:
        """Whether the node's pods may take traffic: Ready, or Unknown (kept while silent)."""
        return self.ready or self.unknown


@dataclass(frozen=True, slots=True)
class Node:
    meta: ObjectMeta
    address: str
    capacity: Resources
    allocatable: Resources
    unschedulable: bool = False
    status: NodeStatus = NodeStatus()
    # Where its agent answers other agents' "do you hear the master?" (0: it does not).
    witness_port: int = 0
    # Its pods' subnet of --cluster-cidr (spec.podCIDR, master/app/podcidr.py); "" none.
    pod_cidr: str = ""
    # Its agent's host-gw report (master/app/podnetwork.py reads them): its pod subnet
    # once its routes and rules are in place ("" not, or never said), and the nodes whose
    # pods its machine cannot reach at their own addresses ("node=subnet" each, sorted).
    pod_cidr_ready: str = ""
    pod_unreached: tuple[str, ...] = ()

    kind = "Node"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened and why; `pinnace get events` lists these."""

    meta: ObjectMeta
    involved_kind: str
    involved_name: str
    reason: str
    message: str
    type: str = "Normal"  # Normal | Warning
    count: int = 1
    first_seen: float = 0.0
    last_seen: float = 0.0
    source: str = ""

    kind = "Event"


@dataclass(frozen=True, slots=True)
class ConfigMap:
    """Configuration for pods (Kubernetes' ConfigMap): text in `data`, bytes (base64 text)
    in `binary_data`."""

    meta: ObjectMeta
    data: Mapping[str, str] = field(default_factory=dict)
    binary_data: Mapping[str, str] = field(default_factory=dict)
    immutable: bool = False

    kind = "ConfigMap"


@dataclass(frozen=True, slots=True)
class Secret:
    """Sensitive configuration (Kubernetes' Secret).

    `data` holds each value base64-encoded, as Kubernetes' API shows it (stringData is
    folded in at parse time). In memory it is plain; at rest the store keeps only
    `sealed` (AES-GCM ciphertext of `data`, master/store/sealing.py) and an empty `data`.
    """

    meta: ObjectMeta
    type: str = "Opaque"
    data: Mapping[str, str] = field(default_factory=dict)
    immutable: bool = False
    sealed: str = ""

    kind = "Secret"


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """An identity for pods; stored and listed (pinnace issues no tokens)."""

    meta: ObjectMeta

    kind = "ServiceAccount"


@dataclass(frozen=True, slots=True)
class PersistentVolumeClaim:
    """A request for storage (Kubernetes' PersistentVolumeClaim).

    pinnace's one storage class, `local`, binds like Kubernetes' WaitForFirstConsumer:
    the claim stays Pending until its first pod is scheduled, then it is bound to a
    PersistentVolume on that pod's node (a Docker volume there), and every later pod
    of the claim is placed on that node only.
    """

    meta: ObjectMeta
    access_modes: tuple[str, ...]
    storage_bytes: int
    storage_class: str = "local"
    volume_mode: str = "Filesystem"
    # Set when bound: the PersistentVolume's name and the node that holds it.
    volume_name: str = ""
    node_name: str = ""
    # As the node's agent last measured the volume: bytes used (-1: not known) and the
    # size of its filesystem (0: the node does not enforce the size).
    used_bytes: int = -1
    capacity_bytes: int = 0
    # "StatefulSet/<name>" when that set's claims go with it (whenDeleted: Delete, as
    # Kubernetes' ownerReference); "" when the claim outlives everything.
    owner: str = ""

    kind = "PersistentVolumeClaim"

    @property
    def phase(self) -> str:
        return "Bound" if self.volume_name else "Pending"


STATEFULSET_OWNER = "StatefulSet/"


@dataclass(frozen=True, slots=True)
class ClaimTemplate:
    """One of a StatefulSet's volumeClaimTemplates: each ordinal gets its own claim,
    `<name>-<set>-<ordinal>`, that outlives the pod."""

    name: str
    access_modes: tuple[str, ...]
    storage_bytes: int
    storage_class: str = "local"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StatefulSetStatus:
    observed_generation: int = 0
    replicas: int = 0
    ready_replicas: int = 0
    current_replicas: int = 0
    updated_replicas: int = 0
    current_revision: str = ""
    update_revision: str = ""


@dataclass(frozen=True, slots=True)
class StatefulSet:
    """Pods with stable names (`<set>-0` .. `<set>-N-1`) and storage (Kubernetes' StatefulSet).

    Its pods carry `owner` "StatefulSet/<name>", so they never mix with a
    Deployment's of the same name."""

    meta: ObjectMeta
    replicas: int
    selector: Mapping[str, str]
    template: PodTemplate
    service_name: str = ""
    # OrderedReady | Parallel
    pod_management_policy: str = "OrderedReady"
    # RollingUpdate | OnDelete
    update_strategy: str = "RollingUpdate"
    partition: int = 0
    claim_templates: tuple[ClaimTemplate, ...] = ()
    # persistentVolumeClaimRetentionPolicy: Retain | Delete
    when_deleted: str = "Retain"
    when_scaled: str = "Retain"
    status: StatefulSetStatus = StatefulSetStatus()

    kind = "StatefulSet"

    @property
    def owner(self) -> str:
        return STATEFULSET_OWNER + self.meta.name


@dataclass(frozen=True, slots=True)
class PersistentVolume:
    """Node-local storage pinnace made for one claim (`get pv`): a Docker volume on a node."""

    meta: ObjectMeta
    storage_bytes: int
    access_modes: tuple[str, ...]
    node_name: str
    claim_name: str
    claim_uid: str
    # Retain: deleting the claim keeps the Docker volume on its node (Released);
    # Delete: the node is told to remove it, and the volume goes once it has.
    reclaim_policy: str = "Retain"
    storage_class: str = "local"
    # Bound while its claim exists; Released once the claim is deleted.
    phase: str = "Bound"
    claim_namespace: str = DEFAULT_NAMESPACE

    kind = "PersistentVolume"


INGRESS_PATH_TYPES = ("Prefix", "Exact", "ImplementationSpecific")
# The one IngressClass pinnace has: the default, served by the master's HAProxy.
INGRESS_CLASS = "pinnace"
INGRESS_CONTROLLER = "pinnace.dev/haproxy"
# The annotation older Ingresses name their class with (before spec.ingressClassName).
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
# Marks the IngressClass of Ingresses that name none.
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
# ingress-nginx's switch for its default HTTP -> HTTPS redirect of hosts with TLS; pinnace
# honours "false" the same way.
SSL_REDIRECT_ANNOTATION = "nginx.ingress.kubernetes.io/ssl-redirect"


@dataclass(frozen=True, slots=True)
class IngressBackend:
    """Where an Ingress sends a request: a Service's port, by number or by name."""

    service: str
    port_number: int = 0
    port_name: str = ""

    @property
    def port_text(self) -> str:
        return str(self.port_number) if self.port_number else self.port_name


@dataclass(frozen=True, slots=True)
class IngressPath:
    """One path of a rule: Prefix (by path elements), Exact, or ImplementationSpecific
    (pinnace treats it as Prefix); "" for ImplementationSpecific matches every path."""

    path: str
    path_type: str
    backend: IngressBackend


@dataclass(frozen=True, slots=True)
class IngressRule:
    """Paths for one host: "" any host, "*.example.com" exactly one more label."""

    host: str
    paths: tuple[IngressPath, ...] = ()


@dataclass(frozen=True, slots=True)
class IngressTLS:
    """Hosts served over HTTPS with the certificate of a kubernetes.io/tls Secret."""

    hosts: tuple[str, ...]
    secret_name: str


@dataclass(frozen=True, slots=True)
class Ingress:
    """HTTP routing by host and path onto Services (Kubernetes' networking.k8s.io/v1 Ingress),
    served by the master's load balancer on its ingress HTTP and HTTPS ports."""

    meta: ObjectMeta
    class_name: str = ""
    default_backend: IngressBackend | None = None
    rules: tuple[IngressRule, ...] = ()
    tls: tuple[IngressTLS, ...] = ()
    # status.loadBalancer.ingress[]: the address the load balancer serves it on, and the
    # ports (HTTP, then HTTPS when it has TLS).
    address: str = ""
    ports: tuple[int, ...] = ()
    # Why part or all of it is not served ("" when all is): a reason and one sentence.
    lb_reason: str = ""
    lb_message: str = ""

    kind = "Ingress"


@dataclass(frozen=True, slots=True)
class Namespace:
    """A namespace (cluster-scoped): names of namespaced objects are unique within one.

    Deleting it marks it Terminating (`deletion_requested_at`); the namespace
    controller (master/controllers/namespaces.py) then deletes everything in it and
    removes it once nothing is left. Nothing new may be created in it meanwhile."""

    meta: ObjectMeta
    # Active | Terminating
    phase: str = "Active"
    deletion_requested_at: float = 0.0

    kind = "Namespace"


@dataclass(frozen=True, slots=True)
class IngressClass:
    """A stored IngressClass (networking.k8s.io/v1, cluster-scoped): which controller serves
    the Ingresses naming it. pinnace serves those whose class's controller is its own
    (INGRESS_CONTROLLER), beside its built-in class "pinnace"; the one annotated
    `ingressclass.kubernetes.io/is-default-class: "true"` is the class of Ingresses that
    name none (master/lb/ingress.py)."""

    meta: ObjectMeta
    controller: str

    kind = "IngressClass"

    @property
    def is_default(self) -> bool:
        return self.meta.annotations.get(DEFAULT_CLASS_ANNOTATION, "").lower() == "true"


StoredObject = (
    Deployment
    | Service
    | Pod
    | Node
    | Event
    | ConfigMap
    | Secret
    | ServiceAccount
    | PersistentVolumeClaim
    | PersistentVolume
    | StatefulSet
    | Ingress
    | Namespace
    | IngressClass
)

KINDS: dict[str, type[StoredObject]] = {
    "Deployment": Deployment,
    "Service": Service,
    "Pod": Pod,
    "Node": Node,
    "Event": Event,
    "ConfigMap": ConfigMap,
    "Secret": Secret,
    "ServiceAccount": ServiceAccount,
    "PersistentVolumeClaim": PersistentVolumeClaim,
    "PersistentVolume": PersistentVolume,
    "StatefulSet": StatefulSet,
    "Ingress": Ingress,
    "Namespace": Namespace,
    "IngressClass": IngressClass,
}


def is_namespaced(kind: str) -> bool:
    return kind not in CLUSTER_SCOPED


def key_name(kind: str, namespace: str, name: str) -> str:
    """The name an object is keyed by, in memory and in the store: "<namespace>/<name>" for
    namespaced kinds, the bare name for cluster-scoped ones. Neither part can hold a "/"
    (both are DNS names), so the key is unambiguous and splits back with `split_key`."""
    return f"{namespace}/{name}" if kind not in CLUSTER_SCOPED else name


def key_of(obj: StoredObject) -> str:
    """`key_name` of a stored object."""
    return key_name(obj.kind, obj.meta.namespace, obj.meta.name)


def split_key(kind: str, key: str) -> tuple[str, str]:
    """(namespace, name) of a key made by `key_name` ("" namespace: cluster-scoped)."""
    if kind in CLUSTER_SCOPED:
        return "", key
    namespace, _, name = key.partition("/")
    return namespace, name


def lb_name(svc: Service) -> str:
    """A Service's name in the load balancer (address pool, conflicts, LbService): its `ref`,
    the bare name in "default" (so HAProxy backends from before namespaces are adopted as
    they are), "<namespace>/<name>" elsewhere (HAProxy's names: master/lb/slots.py)."""
    return ref(svc.meta.namespace, svc.meta.name)


def ref(namespace: str, name: str) -> str:
    """An object's identity where objects of every namespace meet by one string and the
    names from before namespaces must stay as they were (LB endpoints, released pods,
    drain plans, the agent's pods): kernel.names.pod_ref."""
    return kernel_pod_ref(namespace, name)


def split_ref(text: str) -> tuple[str, str]:
    """(namespace, name) of a `ref`."""
    return split_pod_ref(text)


def pod_ref(pod: Pod) -> str:
    """`ref` of a pod."""
    return ref(pod.meta.namespace, pod.meta.name)


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Equality-based label selection; an empty selector matches nothing, as for Services."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


_D = TypeVar("_D", bound=ObjectMeta | StoredObject)


def evolve(obj: _D, **changes: object) -> _D:
    """`dataclasses.replace(obj, **changes)` for metadata and stored objects, field by field.

    Every write replaces an object's metadata and then the object (a put, and the
    managedFields ledger the write records before it), thousands of times a second at
    scale; the generic `replace` re-reads each field's declaration every time and was a
    twelfth of the master's CPU from apply to Running. These classes declare no
    `__post_init__` and no `init=False` field (which `replace` would honour): a unit test
    holds every stored kind to that. An unknown field name is a TypeError, as in `replace`."""
    cls = type(obj)
    new = object.__new__(cls)
    set_ = object.__setattr__
    found = 0
    for name in cls.__slots__:
        if name in changes:
            set_(new, name, changes[name])
            found += 1
        else:
            set_(new, name, getattr(obj, name))
    if found != len(changes):
        unknown = sorted(changes.keys() - set(cls.__slots__))
        raise TypeError(f"{cls.__name__} has no field {unknown[0]!r}")
    return new
