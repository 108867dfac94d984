"""securityContext at pod and container level: who the container's process is.

pinnace applies what Docker can do for a container: the user and group it runs as
(runAsUser, runAsGroup), refusing an image that would run as root (runAsNonRoot,
checked by the agent, which knows the image's user), a read-only root filesystem,
and the supplementary groups (supplementalGroups, fsGroup) — fsGroup also owns the
pod's volumes, as the kubelet makes them (agent/volume_owner.py). The other fields
(capabilities, privileged, seccomp, SELinux, AppArmor, sysctls ...) are warned and
ignored, as before. `effective` merges the two levels the way the kubelet does.
"""

from __future__ import annotations

from typing import Any

from master.manifest.errors import Where
from master.manifest.fields import as_int, as_list, as_map, check_fields, one_of
from master.model import SecurityContext

# Kubernetes' bounds for user and group ids.
ID_MAX = 2147483647
FS_GROUP_CHANGE_POLICIES = ("OnRootMismatch", "Always")
_COMMON = ("runAsUser", "runAsGroup", "runAsNonRoot")
POD_SUPPORTED = (*_COMMON, "fsGroup", "fsGroupChangePolicy", "supplementalGroups")
POD_UNSUPPORTED = (
    "seLinuxOptions", "windowsOptions", "supplementalGroupsPolicy", "sysctls",
    "seccompProfile", "appArmorProfile", "seLinuxChangePolicy",
)  # fmt: skip
CONTAINER_SUPPORTED = (*_COMMON, "readOnlyRootFilesystem")
CONTAINER_UNSUPPORTED = (
    "capabilities", "privileged", "seLinuxOptions", "windowsOptions",
    "allowPrivilegeEscalation", "procMount", "seccompProfile", "appArmorProfile",
)  # fmt: skip


def _flag(data: dict[str, Any], key: str, where: Where) -> bool | None:
    value = data.get(key)
    if value is not None and not isinstance(value, bool):
        raise where.key(key).error("must be true or false")
    return value


def _id(data: dict[str, Any], key: str, where: Where) -> int | None:
    value = data.get(key)
    return None if value is None else as_int(value, where.key(key), 0, ID_MAX)


def parse_security_context(value: Any, where: Where, pod: bool) -> SecurityContext | None:
    """spec.securityContext (`pod`) or a container's; None when absent or empty."""
    if value is None:
        return None
    data = as_map(value, where)
    if pod:
        check_fields(data, where, POD_SUPPORTED, POD_UNSUPPORTED)
    else:
        check_fields(data, where, CONTAINER_SUPPORTED, CONTAINER_UNSUPPORTED)
    groups = None
    policy = None
    if pod:
        if data.get("supplementalGroups") is not None:
            at = where.key("supplementalGroups")
            groups = tuple(
                as_int(g, at.index(i), 0, ID_MAX)
                for i, g in enumerate(as_list(data["supplementalGroups"], at))
            )
        if data.get("fsGroupChangePolicy") is not None:
            policy = one_of(
                data["fsGroupChangePolicy"],
                where.key("fsGroupChangePolicy"),
                FS_GROUP_CHANGE_POLICIES,
            )
    context = SecurityContext(
        run_as_user=_id(data, "runAsUser", where),
        run_as_group=_id(data, "runAsGroup", where),
        run_as_non_root=_flag(data, "runAsNonRoot", where),
        read_only_root_filesystem=None if pod else _flag(data, "readOnlyRootFilesystem", where),
        fs_group=_id(data, "fsGroup", where) if pod else None,
        fs_group_change_policy=policy,
        supplemental_groups=groups,
    )
    return None if context == SecurityContext() else context


def effective(pod: SecurityContext | None, container: SecurityContext | None) -> SecurityContext:
    """What applies to one container: its own runAsUser, runAsGroup and runAsNonRoot over
    its pod's (Kubernetes' DetermineEffectiveSecurityContext); the groups and fsGroup
    are the pod's."""
    p = pod or SecurityContext()
    c = container or SecurityContext()
    return SecurityContext(
        run_as_user=c.run_as_user if c.run_as_user is not None else p.run_as_user,
        run_as_group=c.run_as_group if c.run_as_group is not None else p.run_as_group,
        run_as_non_root=c.run_as_non_root if c.run_as_non_root is not None else p.run_as_non_root,
        read_only_root_filesystem=c.read_only_root_filesystem,
        fs_group=p.fs_group,
        fs_group_change_policy=p.fs_group_change_policy,
        supplemental_groups=p.supplemental_groups,
    )
