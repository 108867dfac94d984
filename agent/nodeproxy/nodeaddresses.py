"""Which of the node's addresses answer on node ports: kube-proxy's --nodeport-addresses (pure).

kube-proxy answers a node port on every address of the node (its rules match "a local
address", whatever the interface), so a NodePort Service is reached on the node's LAN
address, its second NIC, a bridge -- not only on the one address the node registered.
pinnace's node proxy serves TCP node ports through HAProxy, which binds sockets, so it
binds the wildcard (0.0.0.0, and [::] where the node has IPv6) beside the advertise
address, and a `tcp-request connection` rule turns away what kube-proxy would not answer:

- by default every address but loopback (kube-proxy's default for remote clients), the
  advertise address always (a test host's nodes advertise 127.0.0.x);
- with `--nodeport-addresses CIDR,...` only the node's addresses in those ranges
  (127.0.0.0/8 among them serves node ports on loopback too, as kube-proxy's
  localhost node ports), and the advertise address.

Why the wildcard and not one socket per address: the node's addresses come and go (DHCP,
a bridge Docker makes for a network) and a bound socket would have to follow each, with
a reload each time; the wildcard answers on an address the moment it exists. The
advertise address keeps its own socket: the kernel gives a connection to the most
specific one, so agents sharing a machine (each with its own loopback address) each
answer their own. Another process holding the port anywhere on the node makes the
wildcard bind fail: the bind probe (agent/nodeproxy/listeners.py) reports it for the
Service, as before.

UDP node ports are the kernel's (agent/nodeproxy/udprules.py): there the same ranges
select the packets (`fib daddr type local` and the ranges), loopback left out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# (address, port) a socket binds.
Endpoint = tuple[str, int]

WILDCARD_V4 = "0.0.0.0"
WILDCARD_V6 = "::"
LOOPBACK = ("127.0.0.0/8", "::1")


class NodePortAddressesError(ValueError):
    """--nodeport-addresses is not a list of ranges: one sentence."""


def parse_nodeport_addresses(text: str) -> tuple[str, ...]:
    """`--nodeport-addresses 192.0.2.0/24,127.0.0.0/8` -> the ranges, normalised."""
    found = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise NodePortAddressesError(
                f"--nodeport-addresses: {item!r} is not an address range; give ranges such "
                "as 192.0.2.0/24,127.0.0.0/8, or leave the flag out for every address but "
                "loopback"
            ) from None
    return tuple(found)


@dataclass(frozen=True, slots=True)
class NodePortAddresses:
    """Where this node answers on its node ports besides its advertise address."""

    # The node's advertise address ("" none: node ports are not served at all).
    advertise: str = ""
    # kube-proxy's --nodeport-addresses; empty: every address but loopback.
    ranges: tuple[str, ...] = ()
    # The node can bind IPv6: the wildcard [::] too.
    ipv6: bool = False

    def binds(self, port: int) -> tuple[Endpoint, ...]:
        """The sockets a node port's section binds: the advertise address first."""
        if not self.advertise:
            return ()
        wild = [WILDCARD_V4, *([WILDCARD_V6] if self.ipv6 else [])]
        return ((self.advertise, port), *((w, port) for w in wild if w != self.advertise))

    def rule(self) -> str:
        """The HAProxy line refusing connections to an address not served (see above)."""
        if self.ranges:
            allowed = " ".join(dict.fromkeys((*self.ranges, self.advertise)))
            return f"tcp-request connection reject unless {{ dst {allowed} }}"
        return (
            f"tcp-request connection reject if {{ dst {' '.join(LOOPBACK)} }} "
            f"!{{ dst {self.advertise} }}"
        )


# No advertise address: node ports are not served (an agent that gives none, unit tests).
NO_NODE_PORTS = NodePortAddresses()
