"""Whether a text is an IP address, as master and agent both need to tell.

The master keeps only real addresses in what reaches kernel rules and HAProxy (a pod's
reported address, a node's host address); the agent dials a master by address or by
name and checks its certificate accordingly.
"""

from __future__ import annotations

import ipaddress


def is_ip(text: str) -> bool:
    """True for an IPv4 or IPv6 address in text form, False for anything else."""
    if not text:
        return False  # (every report of a pod without its own address: no two exceptions)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
