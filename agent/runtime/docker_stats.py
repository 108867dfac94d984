"""Reading one `docker stats` sample (the Engine API's /containers/ID/stats, one-shot).

Pure: the engine's JSON in, ContainerStats out, the way the docker CLI computes its columns.
CPU is the cumulative `cpu_stats.cpu_usage.total_usage` (nanoseconds): a rate needs two
readings, which the agent's usage sampler keeps (agent/usage.py). Memory is `usage` minus the
page cache the kernel can reclaim (`inactive_file` on cgroup v2, `total_inactive_file` on v1),
so a container that read big files is not shown as using them.
"""

from __future__ import annotations

from typing import Any

from agent.runtime.port import ContainerStats


def parse_stats(raw: dict[str, Any]) -> ContainerStats | None:
    """ContainerStats from one stats answer; None for a container that is not running (the
    engine answers with empty sections then)."""
    cpu = (raw.get("cpu_stats") or {}).get("cpu_usage") or {}
    memory = raw.get("memory_stats") or {}
    if "total_usage" not in cpu or "usage" not in memory:
        return None
    detail = memory.get("stats") or {}
    cache = int(detail.get("inactive_file", detail.get("total_inactive_file", 0)))
    used = int(memory["usage"])
    return ContainerStats(int(cpu["total_usage"]), used - cache if cache < used else used)
