"""Per-node aggregates the scheduler decides over (Kubernetes' NodeInfo).

A scheduling decision asks, for every node, "how much is already requested
here, which host ports are taken, how many pods of this Deployment run here?".
Re-summing every pod for every node on every decision is O(pods x nodes); with
10,000 pods and bursts of hundreds that is far too slow. So the aggregates are
computed once from the store's pods (`build_node_infos`) and then carried
forward incrementally: binding a pod yields `info.with_pod(pod)`, removing one
yields `info.without_pod(pod)`, each O(1) in the number of pods.

Two request totals are kept per node. `requested` is the plain sum of the pods'
requests: what the fit filter checks (describe node sums the pods' own requests,
so the defaults never show to users). `nonzero_requested` counts a container
without a CPU request as 100m and one without a memory request as 200 MiB
(kube-scheduler's DefaultMilliCPURequest / DefaultMemoryRequest): the
least-allocated score reads only this one, so pods that request nothing still
spread by room instead of all tying on an "empty" node. A pod without requests
still fits anywhere; the defaults never reach the filter.

State flow: store snapshot -> build_node_infos -> schedule / schedule_batch,
which return the updated infos so a burst keeps accounting for its own
placements. NodeInfo is immutable; every change returns a new one.

Every pod with `node_name` set counts, including pods whose deletion was
requested: their containers hold resources and ports until the agent has
stopped them and the master removed the pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from master.model import Node, Pod, PodSpec, Resources

HostPort = tuple[int, str]

_NO_PORTS: frozenset[HostPort] = frozenset()
_NOTHING = Resources()

# What scoring assumes a container without a request uses (kube-scheduler's
# DefaultMilliCPURequest and DefaultMemoryRequest), so it is not scored as free.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PodDemand:
    """What a pod asks of whichever node it lands on, summed once per pod."""

    requests: Resources
    host_ports: frozenset[HostPort]
    # `requests` with each container's missing CPU / memory request defaulted; for
    # scoring only (see the module docstring).
    nonzero_requests: Resources


# A single-entry memo keyed by the pod's spec, by identity: filters and scores ask for
# the same pod's demand once per node (a thousand times per decision), and summing the
# containers each time was a measurable share of a burst's cost. The demand reads
# nothing of a pod but its spec, and a template's pods share one spec object (and keep
# it in every version: binding, status), so a burst of one Deployment sums its
# containers once, not once per pod (and again in the scheduler's pod index, which
# reads it on every bind). Identity, not equality, so the lookup is O(1) and can never
# return another spec's answer (the memo holds the spec, so its id is not reused); the
# whole tuple is swapped in one assignment, so concurrent callers at worst recompute.
_last_demand: tuple[PodSpec | None, PodDemand] = (
    None,
    PodDemand(_NOTHING, _NO_PORTS, _NOTHING),
)


def nonzero_requests(pod: Pod) -> Resources:
    """The pod's requests as scoring sees them (kube-scheduler's GetNonzeroRequests).

    Per container, a CPU request of 0 counts as DEFAULT_MILLI_CPU_REQUEST and a
    memory request of 0 as DEFAULT_MEMORY_REQUEST. pinnace's model cannot tell an
    explicit "0" from no request, so both are defaulted.
    """
    cpu = memory = 0
    for c in pod.spec.containers:
        cpu += c.requests.cpu_millis or DEFAULT_MILLI_CPU_REQUEST
        memory += c.requests.memory_bytes or DEFAULT_MEMORY_REQUEST
    return Resources(cpu, memory)


def pod_demand(pod: Pod) -> PodDemand:
    """The pod's summed requests (plain and non-zero) and its explicit host ports."""
    global _last_demand
    spec = pod.spec
    last_spec, demand = _last_demand
    if last_spec is spec:
        return demand
    demand = PodDemand(spec.requests(), spec.host_ports(), nonzero_requests(pod))
    _last_demand = (spec, demand)
    return demand


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node plus what the pods bound to it already take."""

    node: Node
    # Sum of the requests of pods bound to the node and not yet removed.
    requested: Resources = _NOTHING
    # The same with missing requests defaulted; read only by the least-allocated score.
    nonzero_requested: Resources = _NOTHING
    host_ports: frozenset[HostPort] = _NO_PORTS
    # Deployment name -> pods of it on this node; pods without an owner are
    # only counted in pod_count.
    pods_by_owner: Mapping[str, int] = field(default_factory=dict)
    pod_count: int = 0
    # Bytes new claim files can still take on the node's claim disk: its last report less
    # the claims bound there since (None: not reported, or sizes not enforced there).
    claim_free_bytes: int | None = None
    # No report yet since the master started: the room may be anything (the filter waits).
    claim_room_unknown: bool = False

    @property
    def name(self) -> str:
        return self.node.meta.name

    def with_pod(self, pod: Pod) -> NodeInfo:
        """The node after binding one more pod."""
        demand = pod_demand(pod)
        owners = self.pods_by_owner
        if pod.owner_key:
            owners = dict(owners)
            owners[pod.owner_key] = owners.get(pod.owner_key, 0) + 1
        return NodeInfo(
            node=self.node,
            requested=self.requested + demand.requests,
            nonzero_requested=self.nonzero_requested + demand.nonzero_requests,
            host_ports=self.host_ports | demand.host_ports
            if demand.host_ports
            else self.host_ports,
            pods_by_owner=owners,
            pod_count=self.pod_count + 1,
            claim_free_bytes=self.claim_free_bytes,
            claim_room_unknown=self.claim_room_unknown,
        )

    def without_pod(self, pod: Pod) -> NodeInfo:
        """The node after a pod previously added with `with_pod` is removed."""
        demand = pod_demand(pod)
        owners = self.pods_by_owner
        if pod.owner_key and pod.owner_key in owners:
            owners = dict(owners)
            left = owners[pod.owner_key] - 1
            if left > 0:
                owners[pod.owner_key] = left
            else:
                del owners[pod.owner_key]
        return NodeInfo(
            node=self.node,
            requested=self.requested - demand.requests,
            nonzero_requested=self.nonzero_requested - demand.nonzero_requests,
            host_ports=self.host_ports - demand.host_ports
            if demand.host_ports
            else self.host_ports,
            pods_by_owner=owners,
            pod_count=self.pod_count - 1,
            claim_free_bytes=self.claim_free_bytes,
            claim_room_unknown=self.claim_room_unknown,
        )

    def with_node(self, node: Node) -> NodeInfo:
        """The same aggregates over a newer version of the node (status, cordon)."""
        return NodeInfo(
            node,
            self.requested,
            self.nonzero_requested,
            self.host_ports,
            self.pods_by_owner,
            self.pod_count,
            self.claim_free_bytes,
            self.claim_room_unknown,
        )

    def with_claim_room(self, free_bytes: int | None, unknown: bool = False) -> NodeInfo:
        """The same node with this much room left for claim files (`unknown`: not reported
        yet since the master started)."""
        return replace(self, claim_free_bytes=free_bytes, claim_room_unknown=unknown)

    def with_claim_files(self, taken_bytes: int) -> NodeInfo:
        """The node after new claim files of `taken_bytes` were placed on it."""
        if self.claim_free_bytes is None or not taken_bytes:
            return self
        return replace(self, claim_free_bytes=self.claim_free_bytes - taken_bytes)


def build_node_infos(nodes: Iterable[Node], pods: Iterable[Pod]) -> dict[str, NodeInfo]:
    """Aggregate bound pods per node in one pass; pods on unknown nodes are ignored."""
    cpu: dict[str, int] = {}
    memory: dict[str, int] = {}
    scored_cpu: dict[str, int] = {}
    scored_memory: dict[str, int] = {}
    ports: dict[str, set[HostPort]] = {}
    owners: dict[str, dict[str, int]] = {}
    counts: dict[str, int] = {}
    node_list = list(nodes)
    for node in node_list:
        name = node.meta.name
        cpu[name] = memory[name] = scored_cpu[name] = scored_memory[name] = counts[name] = 0
        ports[name] = set()
        owners[name] = {}
    for pod in pods:
        name = pod.node_name
        if name not in counts:
            continue
        requests = pod.spec.requests()
        cpu[name] += requests.cpu_millis
        memory[name] += requests.memory_bytes
        scored = nonzero_requests(pod)
        scored_cpu[name] += scored.cpu_millis
        scored_memory[name] += scored.memory_bytes
        ports[name].update(pod.spec.host_ports())
        if pod.owner_key:
            by_owner = owners[name]
            by_owner[pod.owner_key] = by_owner.get(pod.owner_key, 0) + 1
        counts[name] += 1
    return {
        node.meta.name: NodeInfo(
            node=node,
            requested=Resources(cpu[node.meta.name], memory[node.meta.name]),
            nonzero_requested=Resources(scored_cpu[node.meta.name], scored_memory[node.meta.name]),
            host_ports=frozenset(ports[node.meta.name]),
            pods_by_owner=owners[node.meta.name],
            pod_count=counts[node.meta.name],
        )
        for node in node_list
    }
