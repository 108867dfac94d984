"""Filter: a pod's explicit host ports must be free on the node.

A hostPort is published on the node's advertise address, so two pods asking
for the same (port, protocol) cannot share a node. Ports the agent picks
itself (host_port 0) never conflict and are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from master.model import Pod
from master.scheduler.nodeinfo import NodeInfo, pod_demand

PORTS_TAKEN = "node has no free ports for the requested pod ports"


@dataclass(frozen=True, slots=True)
class HostPorts:
    name: str = "NodePorts"

    def filter(self, pod: Pod, info: NodeInfo) -> str | None:
        wanted = pod_demand(pod).host_ports
        if wanted and not wanted.isdisjoint(info.host_ports):
            return PORTS_TAKEN
        return None
