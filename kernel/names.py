"""Names both sides check the same way: node names and the join token's form.

A node name is a DNS-1123 subdomain, as Kubernetes requires of Node objects:
lower-case alphanumerics, '-' and '.', starting and ending alphanumeric, at most
253 characters. The master refuses other names at registration and join; the
agent refuses them before it ever dials.

A join token is `pinnace1.<id: 8>.<secret: 24>.<CA hash: 43>`: the id and secret
are the bootstrap token Kubernetes uses (lower-case alphanumerics), the CA hash
is the unpadded base64url SHA-256 of the cluster CA's public key, which pins the
master's identity for a joining agent.
"""

from __future__ import annotations

import re

NODE_NAME_MAX = 253
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")

# Groups: token id, token secret, CA public-key hash.
JOIN_TOKEN = re.compile(r"pinnace1\.([a-z0-9]{8})\.([a-z0-9]{24})\.([A-Za-z0-9_-]{43})")


def is_node_name(name: str) -> bool:
    """Whether `name` is a valid node name (a DNS-1123 subdomain)."""
    return len(name) <= NODE_NAME_MAX and _NODE_NAME.match(name) is not None
