"""Service ports a node's proxy cannot serve: what an agent's report does to the Services.

An agent's node proxy test-binds every listener before HAProxy gets a config and leaves
out the ones the node refuses (a process there holds the port), so every other Service
keeps being served (agent/nodeproxy/listeners.py). The agent sends the whole list of
such ports whenever it changes and at each new session; `node_problems_changed` (pure)
turns one node's list into the Services to rewrite -- each keeps the other nodes'
problems and gets this node's anew -- and the events users should see: a Warning when a
node starts refusing a port (or for another reason), a Normal one when it serves it again.
`record_proxy_problems` applies that to the cluster state. A node that is deleted sends no
more lists, so its problems leave its Services with it (`node_deleted`,
`forget_node_problems`): a Service is not left naming a node that no longer exists.

The status shows as a `NodeProxyServing: False` condition of the Service
(master/api/render.py), naming each node, the port and the cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from master.model import ProxyProblem, Service
from master.state import ClusterState


@dataclass(frozen=True, slots=True)
class Reported:
    """One problem as an agent reports it (converted from the wire)."""

    namespace: str
    service: str
    port: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ProblemEvent:
    type: str
    reason: str
    message: str


def node_problems_changed(
    services: Iterable[Service], node: str, reported: Sequence[Reported], now: float
) -> list[tuple[Service, list[ProblemEvent]]]:
    """The Services whose problems change with `node`'s new list, and their events."""
    mine: dict[tuple[str, str], list[Reported]] = {}
    for r in reported:
        mine.setdefault((r.namespace or "default", r.service), []).append(r)
    changed = []
    for svc in services:
        key = (svc.meta.namespace or "default", svc.meta.name)
        before = {p.port: p for p in svc.proxy_problems if p.node == node}
        after = {}
        for r in mine.get(key, []):
            old = before.get(r.port)
            same = old is not None and (old.reason, old.message) == (r.reason, r.message)
            after[r.port] = ProxyProblem(
                node, r.port, r.reason, r.message, old.since if old and same else now
            )
        if after == before:
            continue
        events = [
            ProblemEvent("Warning", p.reason, f"node {node}: port {p.port}: {p.message}")
            for port, p in sorted(after.items())
            if before.get(port) != p
        ]
        events += [
            ProblemEvent(
                "Normal",
                "NodeProxyServing",
                f"node {node}: port {port}: the node proxy serves it now",
            )
            for port in sorted(before.keys() - after.keys())
        ]
        problems = [p for p in svc.proxy_problems if p.node != node] + list(after.values())
        changed.append((replace(svc, proxy_problems=tuple(sorted(problems))), events))
    return changed


def node_deleted(
    services: Iterable[Service], node: str
) -> list[tuple[Service, list[ProblemEvent]]]:
    """The Services that named `node` among their problems, without them, and their events."""
    changed = []
    for svc in services:
        gone = sorted(p.port for p in svc.proxy_problems if p.node == node)
        if not gone:
            continue
        events = [
            ProblemEvent("Normal", "NodeDeleted", f"node {node}: port {port}: the node was deleted")
            for port in gone
        ]
        kept = tuple(p for p in svc.proxy_problems if p.node != node)
        changed.append((replace(svc, proxy_problems=kept), events))
    return changed


def record_proxy_problems(
    state: ClusterState, node: str, reported: Sequence[Reported], now: float
) -> None:
    services = [s for s in state.objects("Service") if isinstance(s, Service)]
    _record(state, node_problems_changed(services, node, reported, now))


def forget_node_problems(state: ClusterState, node: str) -> None:
    services = [s for s in state.objects("Service") if isinstance(s, Service)]
    _record(state, node_deleted(services, node))


def _record(state: ClusterState, changed: list[tuple[Service, list[ProblemEvent]]]) -> None:
    for svc, events in changed:
        state.put(svc)
        for event in events:
            state.record_event(
                "Service",
                svc.meta.name,
                event.reason,
                event.message,
                event.type,
                namespace=svc.meta.namespace,
            )
