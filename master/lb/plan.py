"""Plan how to move HAProxy from what it holds to what the master wants (pure).

`plan_runtime(current, desired)` assigns slots (see `slots.py`) and then decides between two ways
of getting there:

- Runtime API only, when every service port already has a frontend on the same listen port and
  every backend still has enough slots: per changed slot, `set server b/s state maint` before its
  address changes, `set server b/s addr A port P`, then `set server b/s state ready|drain|maint`.
  Order matters: a slot never receives traffic at a half-changed address.
- A reload, when the set of service ports or their listen ports changed, a backend must grow,
  or the ingress frontend's routes or certificates changed (master/lb/ingress.py).
  The config for the new state carries addresses and ready/maint already; the plan's commands
  then re-apply drain, the one state a config cannot express.

The returned plan carries the new state; the driver adopts it once the plan has been carried out.
"""

from __future__ import annotations

from collections.abc import Sequence

from master.lb.model import IngressFrontend, LbPlan, LbService, LbState, Slot
from master.lb.slots import assign_slots, backend_name, server_name


def plan_runtime(
    current: LbState,
    desired: Sequence[LbService],
    *,
    min_slots: int = 16,
    ingress: IngressFrontend | None = None,
) -> LbPlan:
    """Commands (or a reload) that take HAProxy from `current` to `desired` (and `ingress`)."""
    state = assign_slots(current, desired, min_slots, ingress)
    reason = _reload_reason(current, state)
    if reason:
        return LbPlan(
            needs_reload=True, commands=post_reload_commands(state), state=state, reason=reason
        )
    commands: list[str] = []
    for new in state.backends:
        old = current.backend(new.service, new.port_name)
        if old is None:  # cannot happen without a reload reason; a reload is always safe
            return LbPlan(
                needs_reload=True,
                commands=post_reload_commands(state),
                state=state,
                reason=f"backend {new.service}/{new.port_name} is new",
            )
        name = backend_name(new.service, new.port_name)
        for index, (before, after) in enumerate(zip(old.slots, new.slots, strict=True)):
            commands.extend(slot_commands(f"{name}/{server_name(index)}", before, after))
    reason = "endpoints changed" if commands else "nothing changed"
    return LbPlan(needs_reload=False, commands=tuple(commands), state=state, reason=reason)


def _reload_reason(current: LbState, state: LbState) -> str:
    if current.ingress != state.ingress:
        # Routes live in the config (ACLs); certificates are re-read on reload.
        return "ingress routes or certificates changed"
    old = {b.key: b for b in current.backends}
    new = {b.key: b for b in state.backends}
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    if added:
        return "service ports added: " + ", ".join(_label(k) for k in added)
    if removed:
        return "service ports removed: " + ", ".join(_label(k) for k in removed)
    for key in sorted(new):
        if new[key].bind_addresses != old[key].bind_addresses:
            return f"{_label(key)} listens on other addresses"
        if new[key].mode != old[key].mode:
            return f"{_label(key)} switches to {new[key].mode} mode"
        if new[key].listen_port != old[key].listen_port:
            return f"{_label(key)} moved to listen port {new[key].listen_port}"
        if len(new[key].slots) != len(old[key].slots):
            return f"{_label(key)} grows to {len(new[key].slots)} slots"
    return ""


def _label(key: tuple[str, str]) -> str:
    service, port_name = key
    return f"{service}/{port_name}" if port_name else service


def slot_commands(server: str, before: Slot, after: Slot) -> list[str]:
    """Runtime API commands turning one server slot from `before` into `after`."""
    if before == after:
        return []
    commands: list[str] = []
    mode = before.mode
    if (before.address, before.port) != (after.address, after.port):
        if mode != "maint":
            commands.append(f"set server {server} state maint")
            mode = "maint"
        commands.append(f"set server {server} addr {after.address} port {after.port}")
    if after.mode != mode:
        if mode == "maint" and after.mode == "ready":
            # Enter service as DOWN, so the first health check (every `downinter`)
            # proves the port accepts connections before any request is sent.
            commands.append(f"set server {server} health down")
        commands.append(f"set server {server} state {after.mode}")
    return commands


def post_reload_commands(state: LbState) -> tuple[str, ...]:
    """What a freshly loaded config (see `render.py`) lacks: drain states."""
    return tuple(
        f"set server {backend_name(b.service, b.port_name)}/{server_name(i)} state drain"
        for b in state.backends
        for i, slot in enumerate(b.slots)
        if slot.mode == "drain"
    )
