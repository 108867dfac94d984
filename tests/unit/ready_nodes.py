"""Ready nodes for controller tests: a Node object in the state and its lease just renewed.

Why one module: the controller tests (steps, node watch, eviction, orphan delete, object
limits) each need nodes the scheduler can place on, and had written the same Node and lease
setup again and again; and most of them place the same one-container "web" Deployment
(`web_deployment`)."""

from __future__ import annotations

from kernel.clock import FakeClock
from master.controllers.nodes import LeaseTable
from master.model import (
    Container,
    Deployment,
    Node,
    NodeStatus,
    ObjectMeta,
    PodSpec,
    PodTemplate,
    Resources,
)
from master.state import ClusterState

GIB = 2**30


def add_ready_node(
    state: ClusterState,
    leases: LeaseTable,
    clock: FakeClock,
    name: str,
    memory: int = 4 * GIB,
) -> None:
    """A Ready node `name` of 2 CPUs and `memory` bytes, heard from just now."""
    state.put(
        Node(
            meta=ObjectMeta(name=name),
            address="127.0.0.1",
            capacity=Resources(2000, memory),
            allocatable=Resources(2000, memory),
            status=NodeStatus(ready=True),
        )
    )
    leases.renew(name, clock.monotonic())


def add_ready_nodes(state: ClusterState, leases: LeaseTable, clock: FakeClock, count: int) -> None:
    """`count` Ready nodes n0, n1, ... of 2 CPUs and 4 GiB, each heard from just now."""
    for i in range(count):
        add_ready_node(state, leases, clock, f"n{i}")


def web_deployment(replicas: int) -> Deployment:
    """A Deployment "web" of `replicas` nginx pods labelled app=web."""
    container = Container(name="web", image="nginx:latest")
    return Deployment(
        meta=ObjectMeta(name="web"),
        replicas=replicas,
        selector={"app": "web"},
        template=PodTemplate(labels={"app": "web"}, spec=PodSpec(containers=(container,))),
    )
