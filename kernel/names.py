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


# -- pods of several namespaces --------------------------------------------------------

DEFAULT_NAMESPACE = "default"
# Kinds that live outside any namespace (as in Kubernetes); every other kind is
# namespaced and its names are unique per namespace. Here rather than in master/model.py
# so the CLI knows them without loading the model.
CLUSTER_SCOPED: frozenset[str] = frozenset(
    {"Node", "PersistentVolume", "Namespace", "IngressClass"}
)


def pod_ref(namespace: str, name: str) -> str:
    """One string for a pod of any namespace, where pods of all namespaces meet (the
    agent's pod table, load-balancer endpoints): the bare name in "default" (so what was
    named before namespaces keeps its name), "<namespace>/<name>" elsewhere. Names and
    namespaces are DNS names, never holding "/", so the form splits back unambiguously."""
    if not namespace or namespace == DEFAULT_NAMESPACE:
        return name
    return f"{namespace}/{name}"


def split_pod_ref(ref: str) -> tuple[str, str]:
    """(namespace, name) of a `pod_ref`."""
    namespace, _, name = ref.rpartition("/")
    return namespace or DEFAULT_NAMESPACE, name


def flat_pod_ref(ref: str) -> str:
    """A `pod_ref` where "/" cannot go (Docker container and volume names, one directory
    level): "<namespace>_<name>"; "_" is in no DNS name, so two pods never share it."""
    return ref.replace("/", "_")
