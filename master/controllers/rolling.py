"""Rollout arithmetic: how many pods a rolling update may add or take away.

Kubernetes' rules: maxSurge rounds up, maxUnavailable rounds down, both resolved
against the desired replica count; if both come out 0, maxUnavailable is 1 so a
rollout can always make progress.
"""

from __future__ import annotations

import math

from master.model import Deployment


def resolve_int_or_percent(value: str, total: int, round_up: bool) -> int:
    text = value.strip()
    if text.endswith("%"):
        fraction = float(text[:-1]) / 100.0 * total
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(text)


def surge_and_unavailable(dep: Deployment) -> tuple[int, int]:
    """(max extra pods above replicas, max pods below replicas that may be not ready)."""
    surge = resolve_int_or_percent(dep.rolling_update.max_surge, dep.replicas, round_up=True)
    unavailable = resolve_int_or_percent(
        dep.rolling_update.max_unavailable, dep.replicas, round_up=False
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable
