"""`pinnace top`'s data path without an engine: Docker stats parsing, CPU rates from two
readings, the agent's sampler over a fake runtime, the master's joins with its nodes and
pods, the wire round trip and kubectl top's tables."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from agent.claim_disks import ClaimDisks
from agent.convert import usage_to_proto
from agent.runtime.docker_stats import parse_stats
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import (
    LABEL_CLAIM,
    LABEL_CONTAINER,
    LABEL_NODE,
    LABEL_POD,
    LABEL_VOLUME_KIND,
    ContainerInfo,
    ContainerStats,
    VolumeInfo,
)
from agent.usage import UsageSampler, cpu_millis_between
from kernel.clock import FakeClock
from master.api.usage import claim_disk_from_proto, report_from_proto
from master.app.usage import ContainerUse, NodeReport, node_usage, pod_usage
from master.cli.top import node_table, pod_table
from master.controllers.claims import ClaimDisk
from master.model import Container, Node, NodeStatus, ObjectMeta, Pod, PodSpec, Resources
from protos import cluster_pb2

MI = 1024 * 1024


def test_docker_stats_give_cumulative_cpu_and_memory_without_reclaimable_cache() -> None:
    v2 = {
        "cpu_stats": {"cpu_usage": {"total_usage": 5_000_000_000}},
        "memory_stats": {"usage": 50 * MI, "stats": {"inactive_file": 20 * MI}},
    }
    v1 = {
        "cpu_stats": {"cpu_usage": {"total_usage": 7}},
        "memory_stats": {"usage": 10 * MI, "stats": {"total_inactive_file": 4 * MI}},
    }
    stopped: dict[str, dict[str, int]] = {"cpu_stats": {}, "memory_stats": {}}

    assert parse_stats(v2) == ContainerStats(5_000_000_000, 30 * MI)
    assert parse_stats(v1) == ContainerStats(7, 6 * MI)
    assert parse_stats(stopped) is None


def test_cpu_is_the_rate_between_two_readings() -> None:
    # 0.5 s of CPU time over 2 s: a quarter of a core.
    assert cpu_millis_between((10.0, 1_000_000_000), 12.0, 1_500_000_000) == 250
    assert cpu_millis_between(None, 12.0, 1_500_000_000) == 0  # first reading
    assert cpu_millis_between((10.0, 9_000), 12.0, 5_000) == 0  # restarted: counter went back
    assert cpu_millis_between((12.0, 0), 12.0, 5_000) == 0  # no time passed


def _running(engine: FakeEngine, cid: str, pod: str, state: str = "running") -> None:
    labels = {LABEL_NODE: "n1", LABEL_POD: pod, LABEL_CONTAINER: "web"}
    engine.containers[cid] = ContainerInfo(id=cid, name=cid, image="x", state=state, labels=labels)


def test_the_sampler_reports_running_containers_with_cpu_from_the_second_reading() -> None:
    engine = FakeEngine()
    _running(engine, "a", "pod-a")
    _running(engine, "b", "pod-b", state="exited")
    clock = FakeClock()
    sampler = UsageSampler(FakeRuntime("n1", engine), clock, machine=lambda: (300, 2048 * MI))

    engine.stats["a"] = ContainerStats(1_000_000_000, 8 * MI)
    first = asyncio.run(sampler.sample())
    clock.advance(5.0)
    engine.stats["a"] = ContainerStats(2_000_000_000, 9 * MI)
    second = asyncio.run(sampler.sample())

    assert [(c.pod, c.cpu_millis, c.memory_bytes) for c in first.containers] == [
        ("pod-a", 0, 8 * MI)
    ]
    assert [(c.pod, c.container, c.cpu_millis, c.memory_bytes) for c in second.containers] == [
        ("pod-a", "web", 200, 9 * MI)
    ]
    assert (second.node_cpu_millis, second.node_memory_bytes) == (300, 2048 * MI)
    assert second.measured_at == clock.now()


def _node(name: str) -> Node:
    r = Resources(2000, 4096 * MI)
    return Node(ObjectMeta(name=name), "127.0.0.1", r, r, status=NodeStatus(ready=True))


def _pod(name: str, node: str) -> Pod:
    spec = PodSpec(containers=(Container(name="web", image="x"),))
    return Pod(meta=ObjectMeta(name=name), spec=spec, node_name=node)


def test_the_master_joins_reports_with_the_nodes_and_pods_it_knows() -> None:
    reports = {
        "n1": NodeReport(
            500,
            1024 * MI,
            (
                ContainerUse("web-1", "web", 100, 10 * MI),
                ContainerUse("web-1", "sidecar", 20, 5 * MI),
                ContainerUse("moved", "web", 7, 1 * MI),  # now bound to n2
                ContainerUse("gone", "web", 7, 1 * MI),  # deleted
            ),
            123.0,
        ),
        "deleted-node": NodeReport(1, 1, (), 1.0),
    }
    nodes = [_node("n1"), _node("n2")]
    pods = [_pod("web-1", "n1"), _pod("moved", "n2"), _pod("pending", "")]

    assert [
        (u.node, u.cpu_millis, u.allocatable_cpu_millis) for u in node_usage(reports, nodes)
    ] == [("n1", 500, 2000)]
    assert [(u.pod, u.node, u.cpu_millis, u.memory_bytes) for u in pod_usage(reports, pods)] == [
        ("web-1", "n1", 120, 15 * MI)
    ]


def test_a_report_crosses_the_wire_unchanged() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    _running(engine, "a", "pod-a")
    engine.stats["a"] = ContainerStats(0, 3 * MI)
    sample = asyncio.run(UsageSampler(FakeRuntime("n1", engine), clock, lambda: (1, 2)).sample())

    report = report_from_proto(usage_to_proto(sample))

    assert report == NodeReport(1, 2, (ContainerUse("pod-a", "web", 0, 3 * MI),), clock.now())


def test_the_claim_disks_room_rides_with_the_volumes_it_already_counts(tmp_path: Path) -> None:
    engine = FakeEngine()
    labels = {LABEL_NODE: "n1", LABEL_VOLUME_KIND: "claim", LABEL_CLAIM: "data"}
    engine.volumes["pinnace-pvc-1"] = VolumeInfo("pinnace-pvc-1", labels)
    # The node's own claim folder is made with its first claim: measured at its parent.
    disks = ClaimDisks(tmp_path / "claims" / "n1")
    sampler = UsageSampler(FakeRuntime("n1", engine), FakeClock(), lambda: (1, 2), disks)

    sample = asyncio.run(sampler.sample())
    disk = claim_disk_from_proto(usage_to_proto(sample))

    st = os.statvfs(tmp_path)
    assert sample.claim_free_bytes is not None
    assert abs(sample.claim_free_bytes - st.f_bavail * st.f_frsize) < 64 * MI
    assert disk == ClaimDisk(sample.claim_free_bytes, frozenset({"pinnace-pvc-1"}))


def test_an_agent_that_does_not_enforce_sizes_reports_no_room() -> None:
    engine = FakeEngine()
    sample = asyncio.run(
        UsageSampler(FakeRuntime("n1", engine), FakeClock(), lambda: (1, 2)).sample()
    )

    assert sample.claim_free_bytes is None
    assert claim_disk_from_proto(usage_to_proto(sample)) is None


def test_a_claim_that_is_a_plain_volume_reports_what_the_engine_counts_once_a_minute() -> None:
    engine = FakeEngine()
    labels = {LABEL_NODE: "n1", LABEL_VOLUME_KIND: "claim", LABEL_CLAIM: "data"}
    engine.volumes["pinnace-pvc-1"] = VolumeInfo("pinnace-pvc-1", labels)
    engine.volume_bytes["pinnace-pvc-1"] = 12 * MI
    clock = FakeClock()
    sampler = UsageSampler(FakeRuntime("n1", engine), clock, lambda: (1, 2))

    def used() -> int:
        volumes = asyncio.run(sampler.sample()).volumes
        assert volumes is not None and volumes[0].capacity_bytes == 0  # size not enforced
        return volumes[0].used_bytes

    first = used()
    engine.volume_bytes["pinnace-pvc-1"] = 20 * MI
    clock.advance(30)
    within_the_minute = used()  # the engine walks every volume to answer: not every 5 s
    clock.advance(30)

    assert (first, within_the_minute, used()) == (12 * MI, 12 * MI, 20 * MI)


def test_top_prints_kubectl_columns_and_units() -> None:
    reply = cluster_pb2.GetUsageResponse(
        nodes=[
            cluster_pb2.NodeUsage(
                node="n1",
                cpu_millis=250,
                memory_bytes=1024 * MI,
                allocatable_cpu_millis=2000,
                allocatable_memory_bytes=4096 * MI,
            ),
            cluster_pb2.NodeUsage(
                node="n2",
                cpu_millis=1999,
                memory_bytes=3099 * MI,
                allocatable_cpu_millis=2000,
                allocatable_memory_bytes=24034 * MI,
            ),
        ],
        pods=[cluster_pb2.PodUsage(pod="web-1", node="n1", cpu_millis=3, memory_bytes=5 * MI + 7)],
    )

    assert node_table(reply).splitlines() == [
        "NAME   CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)",
        "n1     250m         12%      1024Mi          25%",
        # kubectl top truncates (99.95% is 99%, 12.89% is 12%): the same figures as it prints
        "n2     1999m        99%      3099Mi          12%",
    ]
    assert pod_table(reply).splitlines() == [
        "NAME    CPU(cores)   MEMORY(bytes)",
        "web-1   3m           5Mi",
    ]
