"""The metrics' pure parts and small edges: cluster gauges from plain data, the timing helper,
--metrics-listen parsing, the gRPC code a call is counted under, the agent's probe and
container-operation counting. Values are read from prometheus_client's registry as
differences, since its counters live as long as the test process."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from agent.metrics import counted
from agent.model import Probe
from agent.probes import ProbeKind, ProbeResult, ProbeTarget
from agent.runtime.fake_runtime import FakeRuntime
from agent.runtime.metered import MeteredRuntime
from kernel.clock import FakeClock
from kernel.listen import parse_listen, show_address
from master.api.kube.metered import resource_of
from master.api.metrics_interceptor import _code, _names
from master.controllers.plan_pacing import PlanTally
from master.metrics.cluster import (
    ClusterCollector,
    HeartbeatGauges,
    PodTally,
    count_pods,
    gauge_families,
    lease_age_families,
    measure_cluster,
    state_families,
)
from master.metrics.series import timed
from master.model import (
    Container,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    Resources,
)
from master.state import ClusterState
from master.store import MemoryStore


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _pod(name: str, phase: PodPhase, node: str = "n1", deleting: bool = False) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name),
        spec=PodSpec(containers=(Container(name="c", image="nginx"),)),
        node_name=node,
        deletion_requested_at=1.0 if deleting else 0.0,
        status=PodStatus(phase=phase),
    )


def _node(name: str) -> Node:
    r = Resources(1000, 1 << 30)
    return Node(ObjectMeta(name=name), "127.0.0.1", r, r, status=NodeStatus(ready=True))


# -- cluster gauges ------------------------------------------------------------------------


def test_cluster_gauges_count_every_phase_pending_pods_and_lease_ages() -> None:
    pods = [
        _pod("a", PodPhase.RUNNING),
        _pod("b", PodPhase.RUNNING),
        _pod("c", PodPhase.PENDING, node=""),
        _pod("d", PodPhase.PENDING, node="", deleting=True),
        _pod("e", PodPhase.PENDING),
    ]
    seen = {"n1": 95.5, "n2": None}

    g = measure_cluster(
        count_pods(pods), [_node("n1"), _node("n2")], seen.get, 100.0, {"deployment": 4}
    )

    assert g.pods_by_phase == {
        "Pending": 3,
        "Running": 2,
        "Succeeded": 0,
        "Failed": 0,
        "Unknown": 0,
    }
    assert g.pending_pods == 1  # unbound and not being deleted
    assert g.lease_ages == {"n1": 4.5}  # n2 not heard from since the master started
    assert g.queue_depths == {"deployment": 4, "scheduler": 1}


@pytest.mark.parametrize("seed", range(10))
def test_the_kept_pod_totals_equal_a_full_count_after_random_changes(seed: int) -> None:
    rng = random.Random(seed)
    state = ClusterState(MemoryStore(), FakeClock())

    def step() -> None:
        pods = state.pods()
        roll = rng.random()
        if roll < 0.3 or not pods:
            phase = rng.choice(list(PodPhase))
            state.put(_pod(f"p{rng.randrange(40)}", phase, rng.choice(["", "n1"])))
        elif roll < 0.7:
            pod = rng.choice(pods)
            state.put(
                replace(
                    pod,
                    status=PodStatus(phase=rng.choice(list(PodPhase))),
                    node_name=rng.choice(["", "n1"]),
                    deletion_requested_at=rng.choice([0.0, 0.0, 1.0]),
                )
            )
        elif roll < 0.9:
            state.remove("Pod", rng.choice(pods).meta.name)
        else:
            # Another master's state takes over: some pods gone, some changed.
            rv = state.resource_version + 1
            view = [
                replace(p, meta=replace(p.meta, resource_version=rv), node_name="")
                if rng.random() < 0.3
                else p
                for p in pods
                if rng.random() < 0.9
            ]
            state.replace_all(view, rv)

    for _ in range(20):
        step()
    tally = PodTally(state.pods())
    state.subscribe(tally.on_change)
    for _ in range(300):
        step()
        assert tally.totals() == count_pods(state.pods())


def test_gauge_families_without_a_measurement_name_the_series_without_samples() -> None:
    families = gauge_families(None)

    assert [f.name for f in families] == [
        "pinnace_pods",
        "pinnace_scheduler_pending_pods",
        "pinnace_node_lease_age_seconds",
        "pinnace_controller_queue_depth",
        "pinnace_node_heartbeat_budget_per_second",
        "pinnace_node_heartbeat_budget_cap_per_second",
        "pinnace_node_heartbeat_interval_seconds",
        "pinnace_node_heartbeat_planned_per_second",
        "pinnace_node_sessions",
    ]
    assert all(f.samples == [] for f in families)


def test_the_heartbeat_budget_and_the_sessions_by_plan_interval_are_gauges() -> None:
    """After a burst: the budget cut to 125 a second of its 250, the cluster's plan 40 s,
    4,000 sessions still on it and 1,000 offered 20 s already."""
    tally = PlanTally()
    for i in range(4000):
        tally.set(f"n{i}", 40.0)
    for i in range(4000, 5000):
        tally.set(f"n{i}", 20.0)
    beats = HeartbeatGauges(125.0, 250.0, 40.0, tally.rate, tally.by_interval())
    g = measure_cluster(count_pods([]), [], lambda node: None, 0.0, {}, beats)

    got = {
        (s.name, tuple(s.labels.values())): s.value
        for family in gauge_families(g)
        for s in family.samples
        if s.name.startswith("pinnace_node_")
    }

    assert got == {
        ("pinnace_node_heartbeat_budget_per_second", ()): 125.0,
        ("pinnace_node_heartbeat_budget_cap_per_second", ()): 250.0,
        ("pinnace_node_heartbeat_interval_seconds", ()): 40.0,
        ("pinnace_node_heartbeat_planned_per_second", ()): pytest.approx(150.0),
        ("pinnace_node_sessions", ("20",)): 1000,
        ("pinnace_node_sessions", ("40",)): 4000,
    }


@pytest.fixture
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def test_the_collector_measures_on_the_loop_thread(loop_thread: asyncio.AbstractEventLoop) -> None:
    threads: list[int] = []

    def measure() -> object:
        threads.append(threading.get_ident())
        totals = count_pods([_pod("a", PodPhase.RUNNING)])
        return measure_cluster(totals, [], lambda _: None, 0.0, {})

    families = list(ClusterCollector(loop_thread, measure).collect())  # type: ignore[arg-type]

    assert threads and threads[0] != threading.get_ident()
    running = [s for f in families for s in f.samples if s.labels.get("phase") == "Running"]
    assert [s.value for s in running] == [1]


def test_a_scrape_for_the_pods_alone_walks_no_node(loop_thread: asyncio.AbstractEventLoop) -> None:
    """The lease ages (one series a node) have a collector of their own: a scrape restricted
    to pinnace_pods (a bench's poll every second) does not measure them."""
    walked: list[str] = []

    def measure() -> object:
        return measure_cluster(
            count_pods([_pod("a", PodPhase.RUNNING)]), [], lambda _: None, 0.0, {}
        )

    def measure_ages() -> object:
        walked.append("nodes")
        return measure_cluster(count_pods([]), [_node("n1")], lambda _: 1.0, 3.0, {})

    registry = CollectorRegistry()
    registry.register(ClusterCollector(loop_thread, measure, families=state_families))  # type: ignore[arg-type]
    registry.register(ClusterCollector(loop_thread, measure_ages, families=lease_age_families))  # type: ignore[arg-type]

    pods_only = generate_latest(registry.restricted_registry(["pinnace_pods"])).decode()
    assert 'pinnace_pods{phase="Running"} 1.0' in pods_only
    assert walked == []
    everything = generate_latest(registry).decode()
    assert 'pinnace_node_lease_age_seconds{node="n1"} 2.0' in everything
    assert 'pinnace_pods{phase="Running"} 1.0' in everything
    assert walked == ["nodes"]


def test_a_stuck_loop_leaves_the_gauges_out_instead_of_hanging_the_scrape() -> None:
    stopped = asyncio.new_event_loop()  # never runs: nothing it is asked to do happens
    try:
        collector = ClusterCollector(stopped, lambda: pytest.fail("ran"), timeout=0.05)
        assert list(collector.collect()) == []
    finally:
        stopped.close()


# -- timing and flags ------------------------------------------------------------------------


def test_timed_observes_every_block_and_counts_only_the_failed_ones() -> None:
    h = Histogram("pinnace_test_timed_seconds", "test", registry=None)
    failures = Counter("pinnace_test_timed_failures", "test", registry=None)

    with timed(h, failures):
        pass
    with pytest.raises(ValueError), timed(h, failures):
        raise ValueError("boom")

    async def in_async() -> None:
        async with timed(h, failures):
            await asyncio.sleep(0)

    asyncio.run(in_async())
    counts = {s.name: s.value for m in h.collect() for s in m.samples}
    assert counts["pinnace_test_timed_seconds_count"] == 3
    assert failures._value.get() == 1


def test_metrics_listen_is_host_port_or_empty_for_off() -> None:
    assert parse_listen("") is None
    assert parse_listen("127.0.0.1:9400") == ("127.0.0.1", 9400)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_listen("[::1]:9401") == ("::1", 9401)
    assert show_address("::1", 9401) == "[::1]:9401"
    assert show_address("127.0.0.1", 9400) == "127.0.0.1:9400"
    for bad in ("9400", ":9400", "localhost:", "host:http", "host:70000"):
        with pytest.raises(ValueError, match="--metrics-listen: expected HOST:PORT or ''"):
            parse_listen(bad)


# -- gRPC codes --------------------------------------------------------------------------


class _Context:
    def __init__(self, code: object) -> None:
        self._code = code

    def code(self) -> object:
        return self._code


def test_a_call_is_counted_under_the_code_it_ended_with() -> None:
    assert _names("/pinnace.v1.ClusterService/ApplyManifests") == (
        "pinnace.v1.ClusterService",
        "ApplyManifests",
    )
    assert _code(_Context(None), None) == "OK"
    assert _code(_Context(grpc.StatusCode.NOT_FOUND), None) == "NOT_FOUND"
    assert _code(_Context(5), None) == "NOT_FOUND"
    assert _code(_Context(None), RuntimeError("bug")) == "UNKNOWN"
    assert _code(_Context(None), asyncio.CancelledError()) == "CANCELLED"


# -- agent -----------------------------------------------------------------------------------


def _target(kind: ProbeKind) -> ProbeTarget:
    return ProbeTarget(key=("p", "c", kind), container_id="x", probe=Probe(kind="exec"))


def test_probe_results_are_counted_by_probe_and_result() -> None:
    name = "pinnace_agent_probe_results_total"
    before = {r: sample(name, probe="liveness", result=r) for r in ("success", "failure", "error")}
    answers = iter([ProbeResult(True), ProbeResult(False, "404")])

    async def check(target: ProbeTarget) -> ProbeResult:
        try:
            return next(answers)
        except StopIteration:
            raise RuntimeError("broken probe") from None

    metered = counted(check)

    async def run() -> None:
        await metered(_target("liveness"))
        await metered(_target("liveness"))
        with pytest.raises(RuntimeError):
            await metered(_target("liveness"))

    asyncio.run(run())
    for result in ("success", "failure", "error"):
        assert sample(name, probe="liveness", result=result) - before[result] == 1


def test_container_operations_are_timed_and_failures_counted() -> None:
    ops = "pinnace_agent_container_operation_duration_seconds_count"
    errors = "pinnace_agent_container_operation_errors_total"
    before = {op: sample(ops, operation=op) for op in ("list", "exec")}
    exec_errors = sample(errors, operation="exec")
    runtime = MeteredRuntime(FakeRuntime("n1"))

    async def run() -> None:
        assert await runtime.list_containers() == []
        with pytest.raises(Exception):  # noqa: B017 -- whatever the runtime raises, counted
            await runtime.exec("no-such-container", ("true",))

    asyncio.run(run())
    assert sample(ops, operation="list") - before["list"] == 1
    assert sample(ops, operation="exec") - before["exec"] == 1
    assert sample(errors, operation="exec") - exec_errors == 1
    assert runtime.node == "n1"


# -- Kubernetes API --------------------------------------------------------------------------


def test_kube_api_requests_are_labelled_by_a_bounded_resource() -> None:
    assert resource_of("/api/v1/pods") == "pods"
    assert resource_of("/api/v1/namespaces/default/pods/web-1/log") == "pods"
    assert resource_of("/apis/apps/v1/namespaces/d/deployments/web/scale") == "deployments"
    assert resource_of("/api/v1/namespaces/default") == "namespaces"
    # Anything else is not a resource label: discovery paths use their route, the rest "unknown".
    assert resource_of("/api/v1/no-such-thing-3f9a") is None
    assert resource_of("/version") is None
    assert resource_of("/apis/apps") is None
