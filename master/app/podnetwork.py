"""Which address users are shown for a pod: its own, or its node's (pure).

With host-gw (`--cluster-cidr`, agent/hostgw) every node runs its pods on a bridge of
its own pod subnet and routes the other nodes' subnets via their addresses, so a pod's
own address answers from every node that routes it. Each agent says (protos: PodRoutes,
kept on its Node) its own subnet once its routes and rules are in place
(`pod_cidr_ready`), and which nodes' subnets its machine cannot reach (`pod_unreached`,
"node=subnet" each: refused by host-gw's plan -- no common network, an overlap -- or
needing a route its commands failed to make). A node's pods are **reached at their own
addresses** when its agent has said its own subnet is ready and no serving node's
report names that subnet unreached. Reports name what is not reached rather than what
is, so a Node holds a few entries, not one per node of the cluster; a node that just
joined is routed by the others within a second or so of their next table (before that a
pod there may be shown at an address some node has no route to yet). Then
Kubernetes' view holds: `status.podIP` is the pod's address on its bridge and the
Endpoints name it with the container port, as kubectl, client libraries and
Prometheus' discovery expect.

Otherwise (no pod subnets, a node that does not route this one, an agent that has not
said so yet, a pod left on Docker's default bridge) users see what the data path uses:
the node's address and the pod's host ports, and the pod's `PodIPRoutable` condition
says why. The load balancer, the node proxies and the node's DNS do not read this: each
decides from its own machine's reach (master/lb, agent/nodeproxy, agent/dns).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from master.model import Node, Pod
from master.state import ClusterState

# The pod condition that says whether status.podIP is the pod's own address.
CONDITION = "PodIPRoutable"


def reached_key(node: str, pod_cidr: str) -> str:
    """How a node's report names another node and its pod subnet (Node.pod_unreached)."""
    return f"{node}={pod_cidr}"


@dataclass(frozen=True, slots=True)
class PodNetwork:
    """`subnets`: the pod subnet of each node whose pods every node reaches at their own
    addresses; `unreached`: why not, for each other node with a pod subnet."""

    subnets: Mapping[str, str] = field(default_factory=dict)
    unreached: Mapping[str, str] = field(default_factory=dict)


def pod_network(nodes: Iterable[Node]) -> PodNetwork:
    """Which nodes' pods are reached at their own addresses (see the module's docstring)."""
    with_subnet = sorted((n for n in nodes if n.pod_cidr), key=lambda n: n.meta.name)
    refused: dict[str, str] = {}
    for n in with_subnet:
        if n.status.serving:
            for key in n.pod_unreached:
                refused.setdefault(key, n.meta.name)
    subnets: dict[str, str] = {}
    unreached: dict[str, str] = {}
    for node in with_subnet:
        name = node.meta.name
        if node.pod_cidr_ready != node.pod_cidr:
            unreached[name] = (
                f"node {name} has not reported its pod network ({node.pod_cidr}) in place"
            )
            continue
        missing = refused.get(reached_key(name, node.pod_cidr))
        if missing is not None:
            unreached[name] = (
                f"node {missing} does not route node {name}'s pod subnet {node.pod_cidr} "
                "(see its PodSubnetUnreachable or PodRoutesFailed events)"
            )
            continue
        subnets[name] = node.pod_cidr
    return PodNetwork(subnets, unreached)


@dataclass(frozen=True, slots=True)
class PodAddress:
    """The address users see for a pod; `routable`: it is the pod's own, reached from every
    node (None: the cluster gives nodes no pod subnets, nothing to say); `why`: else why."""

    ip: str
    routable: bool | None = None
    why: str = ""


def _inside(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)
    except ValueError:
        return False


def pod_address(pod: Pod, network: PodNetwork | None) -> PodAddress:
    """The pod's own address when its node's pods are reached so and the pod is on that
    node's bridge; else its node's address (where its ports are published)."""
    st = pod.status
    if network is None or not pod.node_name or st.pod_ip == st.host_ip:
        # No pod subnets, or the pod's own address already (agents with --pod-network).
        return PodAddress(st.host_ip)
    subnet = network.subnets.get(pod.node_name)
    if subnet is None:
        why = network.unreached.get(pod.node_name)
        if why is None:
            return PodAddress(st.host_ip)  # a node with no pod subnet: host ports only
        return PodAddress(st.host_ip, False, f"{why}: shown at its node's address")
    if not st.pod_ip:
        return PodAddress(st.host_ip, False, "the pod has no address on its node's bridge yet")
    if not _inside(st.pod_ip, subnet):
        return PodAddress(
            st.host_ip,
            False,
            f"the pod's address {st.pod_ip} is not in its node's pod subnet {subnet} (it "
            "runs on Docker's default bridge): shown at its node's address",
        )
    return PodAddress(st.pod_ip, True)


class _Memo:
    """The last PodNetwork computed, valid while the same state's Nodes have not changed
    (ClusterState.changes): a list of pods reads it once per pod, at no cost per node."""

    def __init__(self) -> None:
        self.state: ClusterState | None = None
        self.node_changes = -1
        self.network = PodNetwork()


_memo = _Memo()


def network_of(state: ClusterState) -> PodNetwork | None:
    """The cluster's PodNetwork now; None when the master gives nodes no pod subnets."""
    if state.cluster_cidr is None:
        return None
    changes = state.changes("Node")
    if _memo.state is not state or _memo.node_changes != changes:
        nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
        _memo.network, _memo.state, _memo.node_changes = pod_network(nodes), state, changes
    return _memo.network
