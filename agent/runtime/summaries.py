"""A container as the engine's list describes it, for one whose start is under way (pure).

DockerRuntime describes each listed container by a full inspect (cached per id and state).
A container this runtime has created and is starting is the exception: the engine holds
the container's lock for the whole start (0.1-1.6 s on a busy engine, issue 15's apply ->
N running), so an inspect of it waits for the start to end, and with it the list, the pass
that asked for it and every pod's report in that pass. Its list entry already says what an
inspect would say of a container that has not run yet (created: no ports, no process, no
exit), so it is described from that, and the start's own inspect, cached as it returns,
describes it from then on. Any other container, of any state, is inspected as before.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from agent.runtime.port import ContainerInfo
from agent.runtime.sandbox import joined_holder


def summary_name(summary: Mapping[str, Any]) -> str:
    """The container's name in a list entry ("Names": ["/name"]); "" without one."""
    names = summary.get("Names") or []
    return str(names[0]).lstrip("/") if names else ""


def starting_unlisted(summary: Mapping[str, Any], starting: Collection[str]) -> bool:
    """Whether the list entry is a created container whose start this runtime has under way
    (`starting`: the names of those): described by `info_from_summary`, not inspected. Once
    the engine lists it in another state (running, or exited at once) it is inspected."""
    return summary.get("State") == "created" and summary_name(summary) in starting


def info_from_summary(summary: Mapping[str, Any]) -> ContainerInfo:
    """A created container as its list entry describes it: what an inspect gives for one
    that never ran (no ports, times, process or exit yet)."""
    host_config = summary.get("HostConfig") or {}
    return ContainerInfo(
        id=str(summary["Id"]),
        name=summary_name(summary),
        image=str(summary.get("Image") or ""),
        state=str(summary.get("State") or "unknown"),
        labels=dict(summary.get("Labels") or {}),
        sandbox_id=joined_holder(str(host_config.get("NetworkMode") or "")),
    )
