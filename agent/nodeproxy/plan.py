"""What one service table asks of the node proxy: a route, then start, reload, runtime or
nothing (pure).

`plan_step(table, current, running, routed, refused)` assigns slots
(agent/nodeproxy/slots.py) against what HAProxy holds and chooses the cheapest way there:

- start: no HAProxy runs (first table, or an adopted one died);
- reload: the set of sections changed (a Service or port came or went, a cluster IP or
  mode changed, a section must grow), or what HAProxy holds is unknown (an adopted
  proxy whose config differs); hitless, but old workers keep their connections;
- runtime: only endpoints changed: per changed slot, `set server` commands on the admin
  socket -- the listeners and every other connection are untouched;
- none: nothing HAProxy serves changed (a new table version alone is no change).

Order within a slot matters, as in the master's load balancer (master/lb/plan.py): a
slot goes to maint before its address changes and comes back through `health down`,
so it never takes traffic at a half-changed address and its first connection waits
for a health check to pass.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from agent.nodeproxy.nodeaddresses import NO_NODE_PORTS, NodePortAddresses
from agent.nodeproxy.render import DEFAULT_SETTINGS, ProxySettings, render_state, server_name
from agent.nodeproxy.slots import Endpoint, ProxyState, desired_state
from agent.nodeproxy.table import ServiceTable

Action = Literal["start", "reload", "runtime", "none"]


@dataclass(frozen=True, slots=True)
class ProxyStep:
    """Route `route` first ("" none), then `action`: `text` is the config for `state`,
    `commands` the Runtime API lines (runtime only), `reason` says why (for the log)."""

    route: str
    action: Action
    state: ProxyState
    text: str
    commands: tuple[str, ...] = ()
    reason: str = ""


def plan_step(
    table: ServiceTable,
    current: ProxyState | None,
    running: bool,
    routed: str,
    refused: Collection[Endpoint] = (),
    applied_text: str = "",
    settings: ProxySettings = DEFAULT_SETTINGS,
    node: NodePortAddresses = NO_NODE_PORTS,
) -> ProxyStep:
    """`current` is what HAProxy holds (None: unknown, e.g. adopted; then `applied_text`,
    the config it was started with, decides), `routed` the range already local."""
    route = table.service_cidr if table.service_cidr and table.service_cidr != routed else ""
    state = desired_state(table, current, refused, node=node)
    text = render_state(state, table.version, table.service_cidr, settings)
    if not running:
        return ProxyStep(route, "start", state, text, reason="no HAProxy runs")
    if current is None:
        if _body(text) == _body(applied_text):
            return ProxyStep(route, "none", state, text, reason="adopted, same config")
        return ProxyStep(route, "reload", state, text, reason="adopted with another config")
    reason = reload_reason(current, state)
    if reason:
        return ProxyStep(route, "reload", state, text, reason=reason)
    commands = tuple(runtime_commands(current, state))
    if not commands:
        return ProxyStep(route, "none", state, text, reason="nothing changed")
    return ProxyStep(route, "runtime", state, text, commands, "endpoints changed")


def reload_reason(current: ProxyState, state: ProxyState) -> str:
    """Why `state` needs a reload from `current` ("" when slots alone differ)."""
    old = {s.name: s for s in current.sections}
    new = {s.name: s for s in state.sections}
    if added := sorted(new.keys() - old.keys()):
        return "sections added: " + ", ".join(added)
    if removed := sorted(old.keys() - new.keys()):
        return "sections removed: " + ", ".join(removed)
    for name in sorted(new):
        before, after = old[name], new[name]
        if before.where != after.where:
            return f"{name} moved or changed mode"
        if len(before.slots) != len(after.slots):
            return f"{name} grows to {len(after.slots)} slots"
    return ""


def runtime_commands(current: ProxyState, state: ProxyState) -> list[str]:
    """`set server` lines turning every slot of `current` into `state`'s (same sections)."""
    commands: list[str] = []
    for after in state.sections:
        before = current.section(after.name)
        if before is None:
            continue
        for index, (old, new) in enumerate(zip(before.slots, after.slots, strict=True)):
            commands += slot_commands(f"{after.name}/{server_name(index)}", old, new)
    return commands


def slot_commands(server: str, before: Endpoint | None, after: Endpoint | None) -> list[str]:
    if before == after:
        return []
    if after is None:
        return [f"set server {server} state maint"]
    address, port = after
    commands = [] if before is None else [f"set server {server} state maint"]
    commands.append(f"set server {server} addr {address} port {port}")
    commands.append(f"set server {server} health down")
    commands.append(f"set server {server} state ready")
    return commands


def _body(text: str) -> str:
    """The config without its comment header (the table version alone is no change)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))
