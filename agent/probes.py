"""Readiness and liveness probes: when to run each one and what its results mean (pure).

One ProbeState per (pod, container, "readiness"|"liveness") of a running
container, tied to that container's id so a restarted container starts over.
The worker calls `plan_probes` on every pass: it drops the states of containers
that no longer run, creates states for new ones (first probe at the container's
start + initialDelaySeconds), and hands back the probes that are due, already
marked in flight with their next run one period later. The worker runs those
(agent/prober.py, bounded by timeoutSeconds) and feeds each outcome to
`record_result`. Verdicts follow Kubernetes: a readiness probe fails until it
has passed successThreshold times in a row, then passes until it has failed
failureThreshold times in a row; a liveness probe passes until it has failed
failureThreshold times in a row, and then stops (the container is restarted and
its successor gets a fresh state). One exception keeps an agent restart from
flapping pods out of the load balancer: a container this agent last reported
ready (`trusted`: adopted after a restart) keeps passing on trust until its
first probe, which runs at once and alone decides. `unhealthy_containers` is what sync acts on,
`readiness` what pod status reads. Time comes in as `now`; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace
from typing import Literal

from agent.model import ContainerSpec, PodAssignment, Probe, spec_hash
from agent.runtime.port import ContainerInfo

ProbeKind = Literal["readiness", "liveness"]
ProbeKey = tuple[str, str, ProbeKind]  # (pod, container, kind)
ContainerKey = tuple[str, str]  # (pod, container)


@dataclass(frozen=True, slots=True)
class ProbeState:
    container_id: str
    # The verdict so far: readiness starts failing (not ready until proven), liveness passing.
    passing: bool
    successes: int = 0  # in a row
    failures: int = 0  # in a row
    # No probe runs before this time; the next one is due then.
    due_at: float = 0.0
    in_flight: bool = False
    # The last failure, as users read it ("HTTP probe failed with statuscode: 404").
    message: str = ""
    # Passing on trust, not on a probe yet: the first result alone decides.
    provisional: bool = False


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """One probe to run now, resolved to where it goes."""

    key: ProbeKey
    container_id: str
    probe: Probe
    # httpGet/tcpSocket: the address and port to connect to.
    host: str = ""
    port: int = 0
    # Set when the probe cannot be aimed (a named port that does not exist, a port
    # that is not reachable): it fails with this message without any I/O.
    error: str = ""


@dataclass(frozen=True, slots=True)
class Unhealthy:
    """A container whose liveness probe failed: sync stops and restarts it."""

    container_id: str
    message: str


def new_state(
    kind: ProbeKind, probe: Probe, container: ContainerInfo, now: float, trusted: bool = False
) -> ProbeState:
    if kind == "readiness" and trusted:
        return ProbeState(container.id, passing=True, due_at=now, provisional=True)
    started = container.started_at if container.started_at > 0 else now
    return ProbeState(
        container_id=container.id,
        passing=kind == "liveness",
        due_at=started + probe.initial_delay_seconds,
    )


def _waiting(kind: ProbeKind, state: ProbeState) -> bool:
    """Whether the probe will run again once due (it is not running now, and it is not a
    failed liveness probe, which has done its job: the container is being restarted)."""
    return not state.in_flight and not (kind == "liveness" and not state.passing)


def is_due(kind: ProbeKind, state: ProbeState, now: float) -> bool:
    return _waiting(kind, state) and now >= state.due_at


def record(state: ProbeState, probe: Probe, result: ProbeResult) -> ProbeState:
    """The state after one probe run ended with `result`."""
    if state.provisional:
        state = replace(state, passing=result.ok, provisional=False)
    if result.ok:
        successes = state.successes + 1
        return replace(
            state,
            in_flight=False,
            successes=successes,
            failures=0,
            passing=state.passing or successes >= probe.success_threshold,
        )
    failures = state.failures + 1
    return replace(
        state,
        in_flight=False,
        successes=0,
        failures=failures,
        passing=state.passing and failures < probe.failure_threshold,
        message=result.message,
    )


def probe_of(spec: ContainerSpec, kind: ProbeKind) -> Probe | None:
    return spec.readiness_probe if kind == "readiness" else spec.liveness_probe


def probe_port(spec: ContainerSpec, probe: Probe) -> int | str:
    """The container port a probe targets, or why it has none."""
    if probe.port.isdigit():
        return int(probe.port)
    for port in spec.ports:
        if port.name == probe.port:
            return port.container_port
    return f"the container has no port named {probe.port!r}"


def probe_ports(spec: ContainerSpec) -> list[int]:
    """Probe ports the spec does not declare: they are published too, so they can be probed."""
    declared = {p.container_port for p in spec.ports if p.protocol.upper() == "TCP"}
    extra: list[int] = []
    for probe in (spec.readiness_probe, spec.liveness_probe):
        if probe is None or probe.kind == "exec":
            continue
        port = probe_port(spec, probe)
        if isinstance(port, int) and port not in declared and port not in extra:
            extra.append(port)
    return extra


def _reachable_host(host_ip: str) -> str:
    # Ports published on every address are reached on loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host_ip, host_ip)


def aim(
    key: ProbeKey, spec: ContainerSpec, probe: Probe, container: ContainerInfo, host_ip: str
) -> ProbeTarget:
    """Where the probe goes: the container itself, at its own IP and container port, when
    the runtime says the agent can reach it there (a pod network, or the bridge seen from
    the host); else the host port the container port is published on, at the advertise
    address."""
    target = ProbeTarget(key, container.id, probe)
    if probe.kind == "exec":
        return target
    port = probe_port(spec, probe)
    if isinstance(port, str):
        return replace(target, error=port)
    if container.probe_address:
        return replace(target, host=container.probe_address, port=port)
    published = container.ports.get(f"{port}/TCP")
    if not published:
        return replace(target, error=f"port {port} of the container is not published")
    return replace(target, host=_reachable_host(host_ip), port=published)


def plan_probes(
    desired: Mapping[str, PodAssignment],
    observed: Sequence[ContainerInfo],
    states: Mapping[ProbeKey, ProbeState],
    now: float,
    host_ip: str,
    trusted: Set[str] = frozenset(),
) -> tuple[dict[ProbeKey, ProbeState], list[ProbeTarget]]:
    """The probe states of the containers running now, and the probes to start now.

    `trusted`: ids of containers this agent last reported ready."""
    by_pod: dict[str, list[ContainerInfo]] = {}
    for c in observed:
        by_pod.setdefault(c.pod, []).append(c)
    kept: dict[ProbeKey, ProbeState] = {}
    due: list[ProbeTarget] = []
    for name in sorted(desired):
        a = desired[name]
        if a.stop:
            continue
        for spec in a.spec.containers:
            running = [
                c for c in by_pod.get(name, []) if c.container == spec.name and c.state == "running"
            ]
            wanted = spec_hash(spec)
            current = max(
                running, key=lambda c: (c.spec_hash == wanted, c.started_at, c.id), default=None
            )
            if current is None:
                continue
            kinds: tuple[ProbeKind, ...] = ("readiness", "liveness")
            for kind in kinds:
                probe = probe_of(spec, kind)
                if probe is None:
                    continue
                key: ProbeKey = (name, spec.name, kind)
                state = states.get(key)
                if state is None or state.container_id != current.id:
                    state = new_state(kind, probe, current, now, current.id in trusted)
                if is_due(kind, state, now):
                    due.append(aim(key, spec, probe, current, host_ip))
                    state = replace(state, in_flight=True, due_at=now + probe.period_seconds)
                kept[key] = state
    return kept, due


def record_result(
    states: Mapping[ProbeKey, ProbeState],
    desired: Mapping[str, PodAssignment],
    target: ProbeTarget,
    result: ProbeResult,
) -> tuple[dict[ProbeKey, ProbeState], bool]:
    """States with one probe's outcome applied, and whether its verdict changed.

    An outcome for a container that has since been replaced is dropped."""
    state = states.get(target.key)
    if state is None or state.container_id != target.container_id or not state.in_flight:
        return dict(states), False
    pod, container, kind = target.key
    probe = target.probe
    a = desired.get(pod)
    spec = next((s for s in a.spec.containers if s.name == container), None) if a else None
    # The thresholds of the spec as it is now (an update may have changed them).
    probe = (probe_of(spec, kind) if spec else None) or probe
    after = record(state, probe, result)
    return {**states, target.key: after}, after.passing != state.passing


def next_due(states: Mapping[ProbeKey, ProbeState]) -> float | None:
    """When the earliest idle probe is due (None: none waits)."""
    times = [s.due_at for (_, _, kind), s in states.items() if _waiting(kind, s)]
    return min(times, default=None)


def unhealthy_containers(states: Mapping[ProbeKey, ProbeState]) -> dict[ContainerKey, Unhealthy]:
    return {
        (pod, container): Unhealthy(s.container_id, s.message)
        for (pod, container, kind), s in states.items()
        if kind == "liveness" and not s.passing
    }


def readiness(
    states: Mapping[ProbeKey, ProbeState], pod: str, spec: ContainerSpec, container_id: str
) -> tuple[bool, str]:
    """Whether a running container is ready as far as probes go, and the last failure.

    Without a readiness probe a running container is ready."""
    if spec.readiness_probe is None:
        return True, ""
    state = states.get((pod, spec.name, "readiness"))
    if state is None or state.container_id != container_id:
        return False, ""
    return state.passing, "" if state.passing else state.message
