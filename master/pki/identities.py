"""Node identities: which key may speak for which node name (pure decisions).

A node certificate says "CN=web-1, O=pinnace:nodes", but a name alone is not an
identity: two agents started with `--name web-1` could both hold one. So the
master binds each node name to the public key it joined with (the SHA-256 of its
SubjectPublicKeyInfo). Renewals keep the key (the agent sends a CSR for the same
key), so the binding holds for the node's whole life:

- a join for an unbound name binds it to the joining key;
- a join for a name bound to another key is refused while that node is Ready
  (its agent is alive and connected); once the node is NotReady (the agent is
  gone, e.g. a machine reinstalled with a fresh state dir) the join takes the
  name over and the old certificate stops working;
- a join with the bound key itself (an agent whose certificate expired while it
  was down) simply gets a new certificate;
- deleting the node (`pinnace delete node NAME`) forgets the binding; the next
  valid certificate for that name to speak (the old agent's, if it still runs,
  or a new join) binds it again;
- every node call (RegisterNode, the session stream, renewal) must come from the
  bound key: a superseded certificate is refused with PERMISSION_DENIED.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NodeBinding:
    node: str
    # hex SHA-256 of the bound key's SubjectPublicKeyInfo.
    key_sha256: str
    bound_at: float

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "key_sha256": self.key_sha256, "bound_at": self.bound_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeBinding:
        return cls(str(data["node"]), str(data["key_sha256"]), float(data.get("bound_at", 0.0)))


def short(key_sha256: str) -> str:
    return f"sha256:{key_sha256[:16]}"


def join_refusal(binding: NodeBinding | None, key_sha256: str, node_ready: bool) -> str:
    """Why a join for this name with this key is refused, or "" when it may go ahead."""
    if binding is None or binding.key_sha256 == key_sha256 or not node_ready:
        return ""
    return (
        f"node name {binding.node!r} is already taken by a connected agent "
        f"(bound to key {short(binding.key_sha256)}): start this agent with another --name, "
        f"or stop that agent and run `pinnace delete node {binding.node}` first"
    )


def session_refusal(binding: NodeBinding | None, node: str, key_sha256: str) -> str:
    """Why a node call made with this certificate key is refused, or ""."""
    if binding is None or binding.key_sha256 == key_sha256:
        return ""
    return (
        f"the certificate for node {node!r} (key {short(key_sha256)}) was superseded: "
        f"another agent joined as {node!r} with key {short(binding.key_sha256)}; "
        f"rejoin this agent with a token under another --name"
    )
