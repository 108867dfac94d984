"""Which address a node's DNS server listens on when `--cluster-dns` says `auto` (pure).

Pods need port 53 on an address their containers reach, and several agents may
share one machine (tests, the local demo), each with its own dnsmasq: so each
node gets its own link-local address, 169.254.<a>.<b> derived from its name
(never 169.254.169.254, the clouds' metadata address), which the agent makes an
address of its machine (agent/dns/server.py). A container sends to it through its
default route, the machine's bridge, like NodeLocal DNSCache's 169.254.20.10.
An agent in a container beside its pods (the compose demo) gives its own address.
"""

from __future__ import annotations

import hashlib

METADATA = (169, 254)


def derived_address(node: str) -> str:
    digest = hashlib.sha256(node.encode()).digest()
    a, b = 1 + digest[0] % 254, 1 + digest[1] % 254
    if (a, b) == METADATA:
        b = 253
    return f"169.254.{a}.{b}"
