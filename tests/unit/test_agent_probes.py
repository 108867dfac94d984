"""The probe state machine and planning (agent/probes.py): plain data and a number for time."""

from __future__ import annotations

from dataclasses import replace

from agent.model import ContainerPort, ContainerSpec, PodAssignment, PodSpec, Probe, spec_hash
from agent.probes import (
    ProbeKey,
    ProbeResult,
    ProbeState,
    aim,
    new_state,
    next_due,
    plan_probes,
    probe_ports,
    readiness,
    record,
    record_result,
    unhealthy_containers,
)
from agent.runtime.docker_runtime import info_from_inspect, is_local_address
from agent.runtime.port import ContainerInfo

NOW = 1_700_000_000.0
HTTP = Probe(
    kind="httpGet", port="http", path="/healthz", initial_delay_seconds=5, period_seconds=2
)
LIVE = Probe(kind="exec", command=("true",), failure_threshold=2, period_seconds=3)
WEB = ContainerSpec(
    "web",
    "pinnace/httpd:latest",
    ports=(ContainerPort(80, name="http"),),
    readiness_probe=HTTP,
    liveness_probe=LIVE,
)
READY: ProbeKey = ("p", "web", "readiness")
ALIVE: ProbeKey = ("p", "web", "liveness")
OK = ProbeResult(True)
BAD = ProbeResult(False, "HTTP probe failed with statuscode: 500")


def pod(spec: ContainerSpec = WEB, *, stop: bool = False) -> dict[str, PodAssignment]:
    return {"p": PodAssignment("p", 1, PodSpec((spec,)), stop=stop)}


def running(
    cid: str = "c1",
    *,
    spec: ContainerSpec = WEB,
    state: str = "running",
    started: float = NOW,
    ports: dict[str, int] | None = None,
    address: str = "",
    probe_address: str = "",
) -> ContainerInfo:
    return ContainerInfo(
        id=cid,
        name="pinnace-n1-p-web",
        image=spec.image,
        state=state,
        labels={
            "pinnace.node": "n1",
            "pinnace.pod": "p",
            "pinnace.container": spec.name,
            "pinnace.spec-hash": spec_hash(spec),
        },
        started_at=started,
        ports={"80/TCP": 32768} if ports is None else ports,
        address=address,
        probe_address=probe_address,
    )


# -- the state machine ----------------------------------------------------------------


def test_readiness_starts_failing_and_needs_success_threshold_passes_in_a_row() -> None:
    probe = replace(HTTP, success_threshold=2)
    state = new_state("readiness", probe, running(), NOW)

    once = record(state, probe, OK)
    twice = record(once, probe, OK)

    assert (state.passing, once.passing, twice.passing) == (False, False, True)


def test_a_failure_between_successes_starts_the_count_again() -> None:
    probe = replace(HTTP, success_threshold=2)
    state = new_state("readiness", probe, running(), NOW)

    state = record(record(record(state, probe, OK), probe, BAD), probe, OK)

    assert (state.passing, state.successes, state.failures) == (False, 1, 0)


def test_a_passing_probe_fails_only_after_failure_threshold_failures_in_a_row() -> None:
    probe = replace(HTTP, failure_threshold=3)
    state = record(new_state("readiness", probe, running(), NOW), probe, OK)

    two = record(record(state, probe, BAD), probe, BAD)
    reset = record(two, probe, OK)
    three = record(record(record(reset, probe, BAD), probe, BAD), probe, BAD)

    assert two.passing and reset.passing
    assert not three.passing
    assert three.message == "HTTP probe failed with statuscode: 500"


def test_liveness_starts_passing() -> None:
    assert new_state("liveness", LIVE, running(), NOW).passing
    assert not new_state("readiness", HTTP, running(), NOW).passing


def test_first_probe_waits_the_initial_delay_from_the_container_start() -> None:
    container = running(started=NOW - 3)

    states, due = plan_probes(pod(replace(WEB, liveness_probe=None)), [container], {}, NOW, "")
    later, due_later = plan_probes(
        pod(replace(WEB, liveness_probe=None)), [container], states, NOW + 2, ""
    )

    assert due == []
    assert states[READY].due_at == NOW + 2
    assert [t.key for t in due_later] == [READY]
    assert later[READY].in_flight


def test_a_due_probe_runs_once_then_again_one_period_after_it_started() -> None:
    spec = replace(WEB, readiness_probe=None)
    states, due = plan_probes(pod(spec), [running()], {}, NOW, "")
    assert [t.key for t in due] == [ALIVE]

    states, again = plan_probes(pod(spec), [running()], states, NOW + 1, "")
    assert again == []  # still in flight
    states, _ = record_result(states, pod(spec), due[0], OK)
    states, early = plan_probes(pod(spec), [running()], states, NOW + 2.9, "")
    states, on_time = plan_probes(pod(spec), [running()], states, NOW + 3, "")

    assert early == []
    assert [t.key for t in on_time] == [ALIVE]


def test_a_failed_liveness_probe_stops_probing_and_marks_the_container_unhealthy() -> None:
    spec = replace(WEB, readiness_probe=None)
    states: dict[ProbeKey, ProbeState] = {}
    now = NOW
    for _ in range(2):
        states, due = plan_probes(pod(spec), [running()], states, now, "")
        states, _ = record_result(states, pod(spec), due[0], BAD)
        now += LIVE.period_seconds

    states, due = plan_probes(pod(spec), [running()], states, now + 100, "")

    assert due == []
    assert unhealthy_containers(states)[("p", "web")].container_id == "c1"
    assert unhealthy_containers(states)[("p", "web")].message == BAD.message
    assert next_due(states) is None


def test_a_replaced_container_gets_a_fresh_state_and_old_results_are_dropped() -> None:
    spec = replace(WEB, liveness_probe=None)
    states, due = plan_probes(pod(spec), [running("old", started=NOW - 10)], {}, NOW, "")
    states, _ = plan_probes(pod(spec), [running("new", started=NOW)], states, NOW, "")

    after, changed = record_result(states, pod(spec), due[0], OK)

    assert states[READY].container_id == "new"
    assert states[READY].due_at == NOW + HTTP.initial_delay_seconds
    assert after == states and not changed


def test_states_of_stopped_or_gone_containers_are_dropped() -> None:
    states, _ = plan_probes(pod(), [running()], {}, NOW, "")

    exited, _ = plan_probes(pod(), [running(state="exited")], states, NOW, "")
    stopping, _ = plan_probes(pod(stop=True), [running()], states, NOW, "")
    unassigned, _ = plan_probes({}, [running()], states, NOW, "")

    assert set(states) == {READY, ALIVE}
    assert exited == stopping == unassigned == {}


def test_record_result_reports_a_verdict_change_once() -> None:
    spec = replace(WEB, liveness_probe=None, readiness_probe=replace(HTTP, initial_delay_seconds=0))
    states, (target,) = plan_probes(pod(spec), [running()], {}, NOW, "")

    states, first = record_result(states, pod(spec), target, OK)
    states, (target,) = plan_probes(pod(spec), [running()], states, NOW + 2, "")
    states, second = record_result(states, pod(spec), target, OK)

    assert (first, second) == (True, False)
    assert readiness(states, "p", spec, "c1") == (True, "")


def test_readiness_view() -> None:
    spec = replace(WEB, liveness_probe=None)
    failing = {READY: ProbeState("c1", passing=False, failures=3, message="refused")}

    assert readiness({}, "p", replace(spec, readiness_probe=None), "c1") == (True, "")
    assert readiness({}, "p", spec, "c1") == (False, "")  # not probed yet
    assert readiness(failing, "p", spec, "c1") == (False, "refused")
    assert readiness(failing, "p", spec, "c2") == (False, "")  # another container's verdict


# -- where probes go --------------------------------------------------------------------


def test_a_published_port_is_probed_on_the_advertise_address() -> None:
    target = aim(READY, WEB, HTTP, running(ports={"80/TCP": 32768}), "192.0.2.7")

    assert (target.host, target.port, target.error) == ("192.0.2.7", 32768, "")


def test_ports_published_on_every_address_are_probed_on_loopback() -> None:
    assert aim(READY, WEB, HTTP, running(), "0.0.0.0").host == "127.0.0.1"


def test_a_container_the_agent_can_reach_is_probed_on_its_own_ip_and_container_port() -> None:
    on_pod_network = running(ports={"80/TCP": 80}, address="172.18.0.5", probe_address="172.18.0.5")
    on_bridge = running(ports={"80/TCP": 32768}, probe_address="172.17.0.3")

    network = aim(READY, WEB, HTTP, on_pod_network, "127.0.0.1")
    bridge = aim(READY, WEB, replace(HTTP, port="81"), on_bridge, "127.0.0.1")

    assert (network.host, network.port) == ("172.18.0.5", 80)
    # Even a port that is not published: the container's own IP needs no publishing.
    assert (bridge.host, bridge.port, bridge.error) == ("172.17.0.3", 81, "")


def test_unknown_port_names_and_unpublished_ports_are_errors_not_crashes() -> None:
    by_name = aim(READY, WEB, replace(HTTP, port="admin"), running(), "127.0.0.1")
    unpublished = aim(READY, WEB, replace(HTTP, port="81"), running(), "127.0.0.1")
    exec_probe = aim(ALIVE, WEB, LIVE, running(), "127.0.0.1")

    assert by_name.error == "the container has no port named 'admin'"
    assert unpublished.error == "port 81 of the container is not published"
    assert (exec_probe.error, exec_probe.host) == ("", "")


def test_probe_ports_that_are_not_declared_are_published_too() -> None:
    spec = replace(
        WEB,
        readiness_probe=Probe(kind="tcpSocket", port="8081"),
        liveness_probe=Probe(kind="httpGet", port="http"),
    )

    assert probe_ports(spec) == [8081]
    assert probe_ports(replace(spec, readiness_probe=LIVE)) == []


# -- after an agent restart -------------------------------------------------------------


def test_a_container_reported_ready_before_stays_ready_until_its_first_probe_decides() -> None:
    spec = replace(WEB, liveness_probe=None)  # readiness has a 5 s initial delay
    started_long_ago = running(started=NOW - 3)

    states, due = plan_probes(pod(spec), [started_long_ago], {}, NOW, "", trusted={"c1"})
    failed, _ = record_result(states, pod(spec), due[0], BAD)
    passed, _ = record_result(states, pod(spec), due[0], OK)

    assert [t.key for t in due] == [READY]  # at once, initial delay or not
    assert readiness(states, "p", spec, "c1") == (True, "")
    # One failure is enough to end the trust (not failureThreshold of them) ...
    assert readiness(failed, "p", spec, "c1") == (False, BAD.message)
    # ... and a pass turns it into an ordinary passing state.
    assert passed[READY].passing and not passed[READY].provisional


def test_trust_is_only_for_readiness_and_only_for_the_trusted_container() -> None:
    states, _ = plan_probes(pod(), [running("c2")], {}, NOW, "", trusted={"c1"})

    assert not states[READY].passing
    assert states[ALIVE].passing and not states[ALIVE].provisional


def test_the_docker_runtime_offers_the_container_ip_for_probes_only_when_reachable() -> None:
    attrs = {
        "Id": "c1",
        "Config": {"Labels": {}, "ExposedPorts": {"80/tcp": {}}},
        "State": {"Status": "running"},
        "NetworkSettings": {
            "Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]},
            "Networks": {"bridge": {"IPAddress": "172.17.0.3", "Gateway": "172.17.0.1"}},
        },
    }
    gateways: list[str] = []

    def local(gateway: str) -> bool:
        gateways.append(gateway)
        return True

    from_host = info_from_inspect(attrs, routable=local)
    from_a_container = info_from_inspect(attrs, routable=lambda _: False)

    assert (from_host.probe_address, from_host.address) == ("172.17.0.3", "")
    assert from_host.ports == {"80/TCP": 32768}
    assert gateways == ["172.17.0.1"]
    assert from_a_container.probe_address == ""
    assert info_from_inspect(attrs).probe_address == ""


def test_a_local_address_is_told_from_a_foreign_one() -> None:
    assert is_local_address("127.0.0.1")
    assert not is_local_address("192.0.2.254")  # TEST-NET-1, never this machine's
