"""A container's securityContext as the engine takes it; the kubelet's runAsNonRoot check.

The master merges pod and container levels (agent/model.py Security). Here:
- the engine's user: `uid[:gid]` from runAsUser/runAsGroup; a runAsGroup alone keeps
  the image's user with that group (as Kubernetes' runtimes do);
- the supplementary groups: supplementalGroups and fsGroup (Docker's group_add);
- runAsNonRoot: the kubelet's verifyRunAsNonRoot, with its words, so a pod refused
  here reads as it would in Kubernetes (CreateContainerConfigError): a runAsUser of 0,
  an image whose user is root (or unset: root), or one named by a non-numeric user
  that cannot be checked.
The image's user (its Config.User) is asked of the engine only when a decision needs it
(`needs_image_user`).
"""

from __future__ import annotations

from agent.model import PodAssignment, Security
from kernel.names import split_pod_ref


def image_uid(user: str) -> tuple[int | None, str]:
    """(numeric uid, "") or (None, user name) of an image's `USER` ("" is root: 0)."""
    name = user.partition(":")[0]
    if not name:
        return 0, ""
    if name.isdigit():
        return int(name), ""
    return None, name


def needs_image_user(security: Security | None) -> bool:
    return (
        security is not None
        and security.run_as_user is None
        and (security.run_as_non_root or security.run_as_group is not None)
    )


def kubelet_pod_name(assignment: PodAssignment) -> str:
    """The kubelet's format.Pod: `name_namespace(uid)`."""
    namespace, name = split_pod_ref(assignment.name)
    return f"{name}_{namespace}({assignment.uid})"


def non_root_refusal(
    security: Security | None, image_user: str, assignment: PodAssignment, container: str
) -> str:
    """Why runAsNonRoot refuses to start the container, in the kubelet's words ("": it may)."""
    if security is None or not security.run_as_non_root:
        return ""
    which = f'(pod: "{kubelet_pod_name(assignment)}", container: {container})'
    if security.run_as_user is not None:
        if security.run_as_user == 0:
            return f"container's runAsUser breaks non-root policy {which}"
        return ""
    uid, name = image_uid(image_user)
    if uid == 0:
        return f"container has runAsNonRoot and image will run as root {which}"
    if uid is None:
        return (
            f"container has runAsNonRoot and image has non-numeric user ({name}), cannot "
            f"verify user is non-root {which}"
        )
    return ""


def engine_user(security: Security | None, image_user: str) -> str:
    """Docker's `User` for the container ("": the image's own)."""
    if security is None or (security.run_as_user is None and security.run_as_group is None):
        return ""
    user = (
        str(security.run_as_user)
        if security.run_as_user is not None
        else image_user.partition(":")[0] or "0"
    )
    return user if security.run_as_group is None else f"{user}:{security.run_as_group}"


def engine_groups(security: Security | None) -> tuple[str, ...]:
    """Docker's `GroupAdd`: each group once, in order."""
    if security is None:
        return ()
    return tuple(str(g) for g in dict.fromkeys(security.supplemental_groups))
