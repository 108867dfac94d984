"""What the node proxy's HAProxy holds, as plain data, and how a table maps onto it (pure).

Each served Service port is one `listen` section with a fixed number of server slots
(`s0`, `s1`, ...), as the master's load balancer keeps them (master/lb/slots.py): an
endpoint keeps its slot for as long as it exists, a new one takes a slot that was empty
before (lowest first), then one vacated in the same step. A section grows (to the next
power of two) only when its endpoints no longer fit and never shrinks while it lives.
Why: an endpoint change is then a few Runtime API commands on the running HAProxy
(agent/nodeproxy/plan.py), not a reload -- a rollout on a node with long-lived
connections (a Redis client, a database pool) no longer leaves a trail of old workers.

A Service port with a node port (NodePort, LoadBalancer) gets a second section with the
same endpoints, listening at the node port on the node's advertise address and on the
wildcard, with a rule keeping out the addresses not served (`node`,
agent/nodeproxy/nodeaddresses.py), so every node answers on each of its addresses as in
Kubernetes.

`desired_state(table, previous, refused)` is the one place this is decided; the
renderer and the planner both read its result. `refused` names the listeners the node
could not bind (agent/nodeproxy/listeners.py): their sections are left out, so one
port taken on the node never stops the others from being served.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace

from agent.nodeproxy.nodeaddresses import NO_NODE_PORTS, NodePortAddresses
from agent.nodeproxy.table import ServiceTable, TableService

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")

# A Deployment scaled up a little still fits without a reload.
MIN_SLOTS = 8

# (address, port) of one endpoint; None: an empty slot.
Endpoint = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Section:
    """One `listen` section: a Service port on its cluster IP (or a node port on the node's
    addresses: several binds and the rule keeping out what is not served), and its slots."""

    name: str
    namespace: str
    service: str
    binds: tuple[Endpoint, ...]
    http: bool
    slots: tuple[Endpoint | None, ...]
    rule: str = ""

    @property
    def listener(self) -> Endpoint:
        return self.binds[0]

    @property
    def where(self) -> tuple[tuple[Endpoint, ...], bool, str]:
        """What a reload changes: the binds, the mode and the rule."""
        return (self.binds, self.http, self.rule)


@dataclass(frozen=True, slots=True)
class ProxyState:
    """The sections HAProxy serves, sorted by name."""

    sections: tuple[Section, ...] = ()

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)


def _name(text: str) -> str:
    return _UNSAFE.sub("_", text)


def section_name(svc: TableService, port_name: str, port: int) -> str:
    """A unique, readable proxy name: <namespace>.<service>:<port name or number>."""
    ns = svc.namespace or "default"
    return _name(f"{ns}.{svc.name}:{port_name or port}")


def node_port_section_name(svc: TableService, port_name: str, port: int, node_port: int) -> str:
    """<namespace>.<service>:<port name or number>:node<node port>."""
    return f"{section_name(svc, port_name, port)}:node{node_port}"


def served(table: ServiceTable) -> list[TableService]:
    """The Services the proxy answers for: every one with a cluster IP (not headless)."""
    return [s for s in table.services if s.cluster_ip and not s.headless]


def slot_count(endpoints: int, min_slots: int = MIN_SLOTS) -> int:
    """The next power of two >= max(min_slots, endpoints)."""
    count = 1
    while count < max(min_slots, endpoints):
        count *= 2
    return count


def assign(
    previous: tuple[Endpoint | None, ...], wanted: Collection[Endpoint], min_slots: int = MIN_SLOTS
) -> tuple[Endpoint | None, ...]:
    """`wanted` placed into slots, every endpoint of `previous` that stays where it was."""
    unique = sorted(set(wanted))
    size = max(slot_count(len(unique), min_slots), len(previous))
    slots: list[Endpoint | None] = [None] * size
    where = {ep: i for i, ep in enumerate(previous) if ep is not None}
    newcomers = []
    for ep in unique:
        if ep in where:
            slots[where[ep]] = ep
        else:
            newcomers.append(ep)
    # A slot freed in this very step may still carry draining connections: prefer others.
    vacated = sorted(i for ep, i in where.items() if slots[i] is None)
    free = [i for i in range(size) if slots[i] is None and i not in vacated] + vacated
    for ep, index in zip(newcomers, free, strict=False):
        slots[index] = ep
    return tuple(slots)


def desired_state(
    table: ServiceTable,
    previous: ProxyState | None = None,
    refused: Collection[Endpoint] = (),
    min_slots: int = MIN_SLOTS,
    node: NodePortAddresses = NO_NODE_PORTS,
) -> ProxyState:
    """The sections for `table`, slots kept stable with respect to `previous`; listeners in
    `refused` (the node could not bind them) left out, a section with none left too. With
    `node.advertise`, node ports are served on the node's addresses too."""
    sections = []
    for svc in served(table):
        for port in svc.ports:
            if port.protocol.upper() != "TCP":
                continue
            wanted = [(b.address, b.port) for b in port.backends]
            cluster_ip: tuple[Endpoint, ...] = ((svc.cluster_ip, port.port),)
            places: list[tuple[str, tuple[Endpoint, ...], str]] = [
                (section_name(svc, port.name, port.port), cluster_ip, "")
            ]
            if node.advertise and port.node_port:
                name = node_port_section_name(svc, port.name, port.port, port.node_port)
                places.append((name, node.binds(port.node_port), node.rule()))
            for name, all_binds, rule in places:
                binds = tuple(b for b in all_binds if b not in refused)
                if not binds:
                    continue
                section = Section(
                    name=name,
                    namespace=svc.namespace or "default",
                    service=svc.name,
                    binds=binds,
                    http=port.app_protocol.lower() == "http",
                    slots=(),
                    rule=rule,
                )
                before = previous.section(name) if previous is not None else None
                # A section that moved or changed mode is new: its slots start afresh.
                old_slots: tuple[Endpoint | None, ...] = ()
                if before is not None and before.where == section.where:
                    old_slots = before.slots
                sections.append(replace(section, slots=assign(old_slots, wanted, min_slots)))
    return ProxyState(tuple(sorted(sections, key=lambda s: s.name)))


def listeners(
    table: ServiceTable, node: NodePortAddresses = NO_NODE_PORTS
) -> dict[Endpoint, tuple[str, str, str]]:
    """Every listener the table asks for -> (namespace, service, port label); a node
    port's label says so ("http (node port 31234)")."""
    found = {}
    for svc in served(table):
        for port in svc.ports:
            if port.protocol.upper() == "TCP":
                label = port.name or str(port.port)
                ns = svc.namespace or "default"
                found[(svc.cluster_ip, port.port)] = (ns, svc.name, label)
                if node.advertise and port.node_port:
                    for bind in node.binds(port.node_port):
                        found[bind] = (ns, svc.name, f"{label} (node port {port.node_port})")
    return found
