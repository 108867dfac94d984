"""The image a container runs, named as the kubelet names it (containerStatuses[].imageID).

Kubernetes' Docker integration (dockershim, and cri-dockerd after it) reports
`docker-pullable://REPO@sha256:...` — the image's first repo digest — when the image came
from a registry, so that the same image can be pulled again by digest; an image that has
no digest (built on the node, or loaded from a tar file) is reported by its id as
`docker://sha256:...`. Clients compare these strings to tell whether two pods run the same
bits, so the exact shape matters. Pure: the runtime hands in what the engine said.
"""

from __future__ import annotations

from collections.abc import Sequence

PULLABLE_PREFIX = "docker-pullable://"
ID_PREFIX = "docker://"


def kubelet_image_id(image_id: str, repo_digests: Sequence[str]) -> str:
    """`image_id`: the engine's id of the image ("sha256:..."), "" when unknown;
    `repo_digests`: the image's RepoDigests ("REPO@sha256:..."), in the engine's order."""
    for digest in repo_digests:
        if "@" in digest:
            return PULLABLE_PREFIX + digest
    return ID_PREFIX + image_id if image_id else ""
