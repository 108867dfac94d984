"""A whole HAProxy config from services, for tests (the driver assigns slots and renders apart)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from master.lb.model import LbService, LbSettings, LbState
from master.lb.render import render_state
from master.lb.slots import assign_slots


def render_config(
    services: Sequence[LbService],
    settings: LbSettings,
    runtime_socket: Path | str,
    *,
    previous: LbState | None = None,
) -> str:
    """haproxy.cfg for `services`, slots assigned against `previous` as the driver does."""
    state = assign_slots(previous or LbState(), services, settings.slots_per_backend)
    return render_state(state, settings, runtime_socket)
