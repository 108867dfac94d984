"""Observed containers + backoff bookkeeping -> the PodStatusReport the master sees (pure).

Called by the worker after every sync for every pod it knows; the session sends
only the reports that differ from what the master last got. Container states
follow Kubernetes: `running`; `waiting` with ContainerCreating, ErrImagePull,
ImagePullBackOff, CreateContainerError or CrashLoopBackOff; `terminated` with
Completed, Error or OOMKilled. The phase is Pending until every container has
been created, Running while they run (or are being restarted), Succeeded/Failed
once all have exited for good. Ready means every container runs and passes
its readiness probe (one without a probe is ready while it runs), never while
the pod is being stopped. A running container failing a probe says so: reason
Unhealthy, message "Readiness probe failed: ..." or "Liveness probe failed:
...", and the pod carries the first such reason when nothing graver is wrong.
The pod's address (host_ip) is the node's advertise address, where its ports are
published, unless its containers sit on a pod network: then it is their own IP.
A pod the agent stopped by fencing itself is reported with reason Fenced (pending
while its containers go, removed once they are gone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent.model import ContainerSpec, ContainerStatus, PodAssignment, PodStatusReport, spec_hash
from agent.probes import ProbeKey, ProbeState, readiness, unhealthy_containers
from agent.runtime.port import ContainerInfo
from agent.sync import (
    CRASH_LOOP_BACKOFF,
    CREATE_CONTAINER_CONFIG_ERROR,
    CREATE_CONTAINER_ERROR,
    ERR_IMAGE_PULL,
    IMAGE_PULL_BACKOFF,
    ContainerBackoff,
    ContainerKey,
    liveness_failure,
    pick_current,
    should_restart,
)

UNHEALTHY = "Unhealthy"

# The pod reason of a pod stopped by fencing (the master turns it into an event).
FENCED = "Fenced"
_WAITING_ERRORS = frozenset(
    {ERR_IMAGE_PULL, IMAGE_PULL_BACKOFF, CREATE_CONTAINER_ERROR, CREATE_CONTAINER_CONFIG_ERROR}
)


def _terminated_reason(c: ContainerInfo) -> str:
    if c.oom_killed:
        return "OOMKilled"
    return "Completed" if c.exit_code == 0 else "Error"


def _health(
    pod: str,
    spec: ContainerSpec,
    current: ContainerInfo,
    probes: Mapping[ProbeKey, ProbeState],
) -> tuple[bool, str]:
    """Whether a live container passes its probes, and why not ("" when it does or is
    not probed yet)."""
    sick = unhealthy_containers(probes).get((pod, spec.name))
    if sick is not None and sick.container_id == current.id:
        return False, liveness_failure(sick.message)
    ready, failure = readiness(probes, pod, spec, current.id)
    return ready, f"Readiness probe failed: {failure}" if failure else ""


def _container_status(
    pod: str,
    spec: ContainerSpec,
    current: ContainerInfo | None,
    b: ContainerBackoff,
    restart_policy: str,
    now: float,
    probes: Mapping[ProbeKey, ProbeState],
) -> tuple[ContainerStatus, bool]:
    """The status, and whether the container will (re)start by itself."""
    name, image = spec.name, spec.image
    restarts = max(b.restart_count, current.restart_count if current else 0)
    base = ContainerStatus(name=name, image=image, restart_count=restarts)
    if spec.config_error and (current is None or not current.alive):
        return _with(base, "waiting", CREATE_CONTAINER_CONFIG_ERROR, spec.config_error), True
    if current is None or current.state == "created":
        if b.waiting_reason in _WAITING_ERRORS:
            return _with(base, "waiting", b.waiting_reason, b.waiting_message), True
        return _with(base, "waiting", "ContainerCreating", ""), True
    if current.alive:
        healthy, failure = _health(pod, spec, current, probes)
        running = ContainerStatus(
            name=name,
            state="running",
            reason=UNHEALTHY if failure else "",
            message=failure,
            ready=current.state == "running" and healthy,
            restart_count=restarts,
            container_id=current.id,
            image_id=current.image_id,
            image=current.image or image,
            started_at=current.started_at,
            image_note=b.image_note,
        )
        return running, True
    will_restart = should_restart(restart_policy, current)
    if will_restart and b.handled_exit == current.run_key and now < b.retry_at:
        waiting = ContainerStatus(
            name=name,
            state="waiting",
            reason=CRASH_LOOP_BACKOFF,
            message=b.waiting_message,
            restart_count=restarts,
            container_id=current.id,
            image_id=current.image_id,
            image=current.image or image,
            exit_code=current.exit_code,
        )
        return waiting, True
    terminated = ContainerStatus(
        name=name,
        state="terminated",
        reason=_terminated_reason(current),
        message=(
            liveness_failure(b.unhealthy_message)
            if b.unhealthy_id == current.run_key
            else current.error
        ),
        restart_count=restarts,
        container_id=current.id,
        image_id=current.image_id,
        image=current.image or image,
        exit_code=current.exit_code,
        started_at=current.started_at,
    )
    return terminated, will_restart


def _with(base: ContainerStatus, state: str, reason: str, message: str) -> ContainerStatus:
    return ContainerStatus(
        name=base.name,
        state=state,
        reason=reason,
        message=message,
        restart_count=base.restart_count,
        image=base.image,
    )


def pod_status(
    assignment: PodAssignment,
    containers: Sequence[ContainerInfo],
    backoff: Mapping[ContainerKey, ContainerBackoff],
    now: float,
    host_ip: str,
    probes: Mapping[ProbeKey, ProbeState] | None = None,
) -> PodStatusReport:
    """The report for one assigned pod, from its observed containers (this pod's only),
    and the probe states of its containers (agent/probes.py)."""
    a = assignment
    if a.stop and not containers:
        return removed_status(a.name, a.epoch, host_ip)
    statuses: list[ContainerStatus] = []
    port_map: dict[str, int] = {}
    pod_ip = ""
    bridge_ip = ""
    started: list[float] = []
    all_created = True
    any_active = False
    all_exited = True
    for spec in a.spec.containers:
        mine = [c for c in containers if c.container == spec.name]
        current, _ = pick_current(mine, spec_hash(spec))
        b = backoff.get((a.name, spec.name), ContainerBackoff())
        status, will_restart = _container_status(
            a.name, spec, current, b, a.spec.restart_policy, now, probes or {}
        )
        statuses.append(status)
        if current is None or current.state == "created":
            all_created = False
        if status.state == "running" and current is not None:
            any_active = True
            started.append(status.started_at)
            pod_ip = pod_ip or current.address
            bridge_ip = bridge_ip or current.probe_address
            for port in spec.ports:
                if port.key in current.ports:
                    port_map[port.key] = current.ports[port.key]
        elif current is not None and current.dead and will_restart:
            any_active = True
        if status.state != "terminated" or will_restart:
            all_exited = False
    if all_exited and statuses:
        failed = any(s.exit_code != 0 or s.reason == "OOMKilled" for s in statuses)
        phase = "Failed" if failed else "Succeeded"
    elif all_created and any_active:
        phase = "Running"
    else:
        phase = "Pending"
    reason = ""
    message = ""
    for s in statuses:
        if s.state == "waiting" and s.reason != "ContainerCreating":
            reason, message = s.reason, s.message
            break
    else:
        for s in statuses:
            if s.reason == UNHEALTHY:
                reason, message = s.reason, f"container {s.name}: {s.message}"
                break
    if a.stop:
        reason, message = "Stopping", "the master ordered the pod stopped"
    ready = not a.stop and bool(statuses) and all(s.ready for s in statuses)
    return PodStatusReport(
        pod_name=a.name,
        epoch=a.epoch,
        phase=phase,
        reason=reason,
        message=message,
        host_ip=pod_ip or host_ip,
        port_map=port_map,
        containers=tuple(statuses),
        ready=ready,
        started_at=min(started) if started else 0.0,
        pod_ip=bridge_ip,
    )


def removed_status(pod: str, epoch: int, host_ip: str) -> PodStatusReport:
    """The report for a pod this node no longer has a container of."""
    return PodStatusReport(
        pod_name=pod,
        epoch=epoch,
        phase="Succeeded",
        reason="Stopped",
        host_ip=host_ip,
        removed=True,
    )


def fenced_status(
    pod: str, epoch: int, message: str, host_ip: str, removed: bool
) -> PodStatusReport:
    """The report for a pod this node stopped because it fenced itself: the master may
    be running it elsewhere by now, and records the reason as a Fenced event."""
    return PodStatusReport(
        pod_name=pod,
        epoch=epoch,
        phase="Pending",
        reason=FENCED,
        message=message,
        host_ip=host_ip,
        removed=removed,
    )


def adopted_status(pod: str, containers: Sequence[ContainerInfo], host_ip: str) -> PodStatusReport:
    """A report from container labels alone, for a pod found before any assignment arrived
    (what a restarted agent registers with, so the master keeps the pod). It carries the
    pod's bridge address as `pod_status` does: a report without it made the master's view
    of a running pod lose its address at every agent restart and get it back at the next
    report, and the master's HAProxy, which reaches pods at that address
    (master/lb/endpoints.py `lb_address`), took every such slot out of service meanwhile."""
    statuses: list[ContainerStatus] = []
    port_map: dict[str, int] = {}
    bridge_ip = ""
    by_name: dict[str, list[ContainerInfo]] = {}
    for c in containers:
        by_name.setdefault(c.container, []).append(c)
    for name in sorted(by_name):
        current, _ = pick_current(by_name[name], "")
        if current is None:  # cannot happen: every list here holds at least one container
            continue
        if current.alive:
            port_map |= current.ports
            host_ip = current.address or host_ip
            bridge_ip = bridge_ip or current.probe_address
        statuses.append(
            ContainerStatus(
                name=name,
                state="running" if current.alive else "terminated",
                reason="" if current.alive else _terminated_reason(current),
                ready=current.state == "running",
                restart_count=current.restart_count,
                container_id=current.id,
                image_id=current.image_id,
                image=current.image,
                exit_code=current.exit_code,
                started_at=current.started_at,
            )
        )
    running = all(s.state == "running" for s in statuses)
    started = [s.started_at for s in statuses if s.state == "running"]
    return PodStatusReport(
        pod_name=pod,
        epoch=max((c.epoch for c in containers), default=0),
        phase="Running" if running else "Pending",
        host_ip=host_ip,
        port_map=port_map,
        containers=tuple(statuses),
        ready=running and all(s.ready for s in statuses),
        started_at=min(started) if started else 0.0,
        pod_ip=bridge_ip,
    )
