"""The node's pod bridge: a Docker bridge network of the node's pod subnet (pure decisions).

With a pod subnet from the master (master/app/podcidr.py), the agent runs its pods on
a bridge network of its own, `pinnace-pods-<node>`, whose subnet is that pod subnet,
instead of Docker's default bridge (172.17.0.0/16 on every machine, so no machine
could route to another's). Ports are still published on the node's address, as
without it: the load balancer and node proxies keep reaching pods there. The bridge
is one network per node, so several agents sharing one engine (tests, the local demo)
each have their own.

`bridge_plan` decides from the node's networks the engine has (labelled with the node,
and the one of the usual name): one of the wanted subnet -> use it (an agent restart;
its pods are on it); none -> make one, after removing this node's networks no
container uses any more. A network of an old subnet that still has pods (the node's
subnet changed: the master's --cluster-cidr did) is left to its pods, and the new one
gets a name of its own, so new pods go on the new subnet at once; the old one is
removed at a later pod start once its pods are gone (`retry`). Only a new subnet that
overlaps an old one still in use must wait (Docker refuses overlapping networks): new
pods then run on Docker's default bridge, saying why, until the old pods are gone.

Docker 28 and later drop packets addressed to a bridge's containers that arrive from
another interface (a raw PREROUTING rule) unless the network's gateway mode says
otherwise: `com.docker.network.bridge.gateway_mode_ipv4=nat-unprotected` keeps NAT for
traffic leaving the pods and lets routed traffic in, as host-gw needs (Docker's "Port
publishing and mapping: gateway modes"). Older engines store the option and ignore it;
one that refuses it gets the bridge without it (agent/runtime/docker_runtime.py). A
bridge of the wanted subnet made without the option is made again while it is empty.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

LABEL_POD_CIDR = "pinnace.pod-cidr"
GATEWAY_MODE = "com.docker.network.bridge.gateway_mode_ipv4"
BRIDGE_OPTIONS = {GATEWAY_MODE: "nat-unprotected"}


def bridge_name(node: str) -> str:
    return f"pinnace-pods-{node}"


@dataclass(frozen=True, slots=True)
class BridgeNet:
    """One of the node's networks as the engine has it; `attached`: containers on it."""

    name: str
    subnet: str
    attached: int
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        """Made with the gateway mode that lets routed traffic in (Docker >= 28)."""
        return all(self.options.get(k) == v for k, v in BRIDGE_OPTIONS.items())


@dataclass(frozen=True, slots=True)
class BridgePlan:
    """`name`: the network pods go on ("" for Docker's default bridge, `why` says why);
    `create`: make it first; `remove`: this node's networks no container uses, removed
    before; `retry`: plan again at the next pod start (an old network still has pods)."""

    action: Literal["use", "create", "wait"]
    name: str = ""
    remove: tuple[str, ...] = ()
    retry: bool = False
    why: str = ""


def _overlap(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_network(a, strict=False).overlaps(ipaddress.ip_network(b, strict=False))
    except ValueError:
        return False


def bridge_plan(node: str, networks: Sequence[BridgeNet], want: str) -> BridgePlan:
    """Where this node's pods go for pod subnet `want` (see the module's docstring)."""
    base = bridge_name(node)
    # A network of the subnet is used if it lets routed traffic in, or has pods already.
    usable = [n for n in networks if n.subnet == want and (n.open or n.attached)]
    keep = {n.name for n in usable[:1]}
    remove = tuple(sorted(n.name for n in networks if not n.attached and n.name not in keep))
    busy = [n for n in networks if n.attached and n.name not in keep]
    retry = bool(busy)
    if usable:
        return BridgePlan("use", usable[0].name, remove, retry)
    clash = next((n for n in busy if _overlap(n.subnet, want)), None)
    if clash is not None:
        return BridgePlan(
            "wait",
            remove=remove,
            retry=True,
            why=f"network {clash.name} has subnet {clash.subnet} and {clash.attached} "
            f"containers, which overlaps this node's new pod subnet {want}: new pods run on "
            "Docker's default bridge (reached at the node's address only) until that "
            "network's pods are gone",
        )
    taken = {n.name for n in busy}
    tag = want.replace(".", "-").replace("/", "-")
    return BridgePlan("create", base if base not in taken else f"{base}-{tag}", remove, retry)
