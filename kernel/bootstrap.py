"""The anonymous bootstrap identity's public constants (see master/pki/anonymous.py).

The master requires a client certificate on every connection, so an agent that
has not joined yet presents one minted under the anonymous CA, whose private key
is derived from the public seed below: anyone can mint one, so it proves
nothing, and the master lets it call only JoinNode with a valid token. Master
and agent must derive the same key; changing a constant breaks joins between
versions.
"""

from __future__ import annotations

import hashlib

ANONYMOUS_SEED = b"pinnace anonymous bootstrap identity v1 -- this key is public"
ANONYMOUS_CA_CN = "pinnace anonymous bootstrap CA (public key: proves nothing)"
ANONYMOUS_CN = "pinnace:anonymous"


def anonymous_secret() -> int:
    """The anonymous CA's private scalar (for an ECDSA P-256 key) derived from the seed."""
    return int.from_bytes(hashlib.sha256(ANONYMOUS_SEED).digest(), "big")
