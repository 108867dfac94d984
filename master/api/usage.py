"""GetUsage and the agents' usage reports: conversion between the wire and master/app/usage.py.

Thin: an agent's UsageReport becomes a NodeReport in the table; GetUsage answers with the
pure joins of the table and the current nodes and pods.
"""

from __future__ import annotations

from master.app.usage import ContainerUse, NodeReport, UsageTable, node_usage, pod_usage
from master.controllers.claims import ClaimDisk, VolumeUse
from master.model import Node
from master.state import ClusterState
from protos import cluster_pb2, node_pb2

# Claim volumes read from one report (a node holds far fewer).
MAX_VOLUMES = 10_000


def report_from_proto(msg: node_pb2.UsageReport) -> NodeReport:
    return NodeReport(
        cpu_millis=msg.node_cpu_millis,
        memory_bytes=msg.node_memory_bytes,
        containers=tuple(
            ContainerUse(c.pod, c.container, c.cpu_millis, c.memory_bytes) for c in msg.containers
        ),
        measured_at=msg.measured_at,
    )


def volume_uses_from_proto(msg: node_pb2.UsageReport) -> list[VolumeUse]:
    return [
        VolumeUse(v.volume_name[:253], max(v.used_bytes, -1), max(v.capacity_bytes, 0))
        for v in msg.volumes[:MAX_VOLUMES]
    ]


def claim_disk_from_proto(msg: node_pb2.UsageReport) -> ClaimDisk | None:
    """The node's claim disk room, when it enforces sizes and could list its volumes."""
    if not msg.volumes_listed or not msg.HasField("claim_free_bytes"):
        return None
    return ClaimDisk(
        max(msg.claim_free_bytes, 0),
        frozenset(v.volume_name[:253] for v in msg.volumes[:MAX_VOLUMES]),
    )


def usage_response(table: UsageTable, state: ClusterState) -> cluster_pb2.GetUsageResponse:
    nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
    return cluster_pb2.GetUsageResponse(
        nodes=[
            cluster_pb2.NodeUsage(
                node=u.node,
                cpu_millis=u.cpu_millis,
                memory_bytes=u.memory_bytes,
                allocatable_cpu_millis=u.allocatable_cpu_millis,
                allocatable_memory_bytes=u.allocatable_memory_bytes,
                measured_at=u.measured_at,
            )
            for u in node_usage(table.reports, nodes)
        ],
        pods=[
            cluster_pb2.PodUsage(
                pod=u.pod,
                node=u.node,
                cpu_millis=u.cpu_millis,
                memory_bytes=u.memory_bytes,
                measured_at=u.measured_at,
            )
            for u in pod_usage(table.reports, state.pods())
        ],
    )
