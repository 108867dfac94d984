"""Pod subnets: one per node from the cluster's pod range (pure), Kubernetes' node IPAM.

With `--cluster-cidr` (kube-controller-manager's flag, with --allocate-node-cidrs),
every node gets its own subnet of the range (`spec.podCIDR`, a /24 by default as
`--node-cidr-mask-size` says). The node's agent makes its pods' Docker bridge of
that subnet and routes every other node's subnet via that node's address (flannel's
host-gw backend, agent/hostgw), so a pod's own address is reachable from pods on
any node, and a headless Service's DNS names give pod addresses. Without the flag
nodes get none and pods are reached at their node's published ports, as before.

The subnet is stored on the Node, so it is stable across agent restarts, master
restarts and failovers: allocation reads what is taken from the stored Nodes and
nothing else. A node keeps its subnet while it stays inside the range; deleting
the Node frees it. The lowest free subnet is taken; when none is left the node
joins without one (its pods are reached as without the flag) and the master says
so as a Warning event (CIDRNotAvailable, Kubernetes' reason).

Flow: RegisterNode (master/api/node_servicer.py) -> `node_pod_cidr` with the
other nodes' subnets -> stored on the Node -> the agent's registration answer and
every agent's service table (master/api/servicetable.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

# kube-controller-manager's --node-cidr-mask-size default for IPv4.
DEFAULT_NODE_MASK = 24


class PodCidrError(ValueError):
    """A bad --cluster-cidr / --node-cidr-mask-size: one sentence."""


def parse_cluster_cidr(text: str, mask: int = DEFAULT_NODE_MASK) -> ipaddress.IPv4Network:
    """`--cluster-cidr` with `--node-cidr-mask-size`: an IPv4 network holding at least one
    node subnet, as one sentence when not."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise PodCidrError(f"--cluster-cidr {text}: not a network in CIDR form ({e})") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise PodCidrError(f"--cluster-cidr {text}: only IPv4 pod ranges are supported")
    if not 8 <= mask <= 28:
        raise PodCidrError(
            f"--node-cidr-mask-size {mask}: give 8 to 28 (a node subnet needs room for pods; "
            "Kubernetes' default is 24)"
        )
    if mask < network.prefixlen:
        raise PodCidrError(
            f"--node-cidr-mask-size {mask}: node subnets must fit in --cluster-cidr {network} "
            f"(give a mask of at least {network.prefixlen})"
        )
    if mask - network.prefixlen > 16:
        raise PodCidrError(
            f"--cluster-cidr {network} with --node-cidr-mask-size {mask}: more than 65536 node "
            "subnets; give a smaller range or a shorter mask"
        )
    return network


def _subnet(text: str) -> ipaddress.IPv4Network | None:
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return None
    return network if isinstance(network, ipaddress.IPv4Network) else None


def keeps(cluster: ipaddress.IPv4Network, mask: int, current: str) -> bool:
    """Whether a node's stored subnet is still one of the range's (a changed --cluster-cidr
    or mask gives it a new one)."""
    subnet = _subnet(current)
    return subnet is not None and subnet.prefixlen == mask and subnet.subnet_of(cluster)


def node_pod_cidr(
    cluster: ipaddress.IPv4Network, mask: int, current: str, others: Iterable[str]
) -> str:
    """The subnet a registering node gets: the one it holds if it still fits and no other
    node holds it, else the lowest free one; "" when the range is full."""
    taken = {str(s) for s in map(_subnet, others) if s is not None}
    if keeps(cluster, mask, current) and current not in taken:
        return current
    for subnet in cluster.subnets(new_prefix=mask):
        if str(subnet) not in taken:
            return str(subnet)
    return ""
