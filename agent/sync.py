"""Desired pods vs this node's containers -> the actions that close the gap (pure).

`sync(desired, observed, now, backoff)` is the agent's whole decision: `desired`
is the master's latest assignment set (pod name -> PodAssignment), `observed` the
containers labelled for this node, `backoff` per-container restart bookkeeping
(plain data, handed back updated in the SyncResult), `now` wall-clock seconds.
The worker executes the returned actions, serially within a pod, and feeds the
outcome back in through `record_pull_failure` / `record_start_failure`. Nothing
here does I/O or reads a clock, so every rule is unit tested with plain values.

Rules, in the order they apply to a pod:
- stop=true, or not assigned at all: stop the live containers, remove them all;
- a container whose spec hash differs from the desired spec: replace it;
- no container: pull the image, start one (unless a pull/start failure backs off);
  when one was seen running or waiting to restart and is gone (removed on the engine,
  or taken with its pod's sandbox when the holder died: agent/runtime/sandbox.py), the
  new one is a restart and counts as one, as the kubelet counts a container it creates
  again in a new sandbox; a container the agent has no memory of (a restarted agent)
  starts its count where the pod's status at the master left it (PodAssignment.seen);
- an exited container: restart it per restartPolicy, the first time at once,
  then after 1 s, 2 s, ... up to 60 s; ten minutes of running resets the delay;
- a live container whose liveness probe failed (`unhealthy`, from agent/probes.py):
  stop it with the pod's grace period; it then counts as exited (a failure,
  whatever its exit code) and is restarted by the rule above, its messages
  saying "Liveness probe failed: ...".
Epochs are not compared: a container with the desired spec hash is kept whatever
epoch label it carries, so adoption after an agent or master restart never
restarts a pod; reports carry the assignment's epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from agent.model import ContainerSpec, PodAssignment, spec_hash
from agent.probes import Unhealthy
from agent.runtime.port import ContainerInfo

BACKOFF_INITIAL = 1.0
BACKOFF_CAP = 60.0
BACKOFF_RESET_AFTER = 600.0

ContainerKey = tuple[str, str]  # (pod name, container name)

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
CRASH_LOOP_BACKOFF = "CrashLoopBackOff"
CREATE_CONTAINER_ERROR = "CreateContainerError"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"


@dataclass(frozen=True, slots=True)
class ContainerBackoff:
    """Restart and retry bookkeeping for one container of a pod."""

    restart_count: int = 0
    # The delay the next failure will wait (0: the first restart is immediate).
    next_delay: float = 0.0
    # No new attempt before this time.
    retry_at: float = 0.0
    # The delay that retry_at was set with (0: the attempt goes at once).
    last_delay: float = 0.0
    # The run (ContainerInfo.run_key) whose exit has been accounted for (so it backs off
    # once; a container started again in place keeps its id, so the id is not enough).
    handled_exit: str = ""
    last_exit_code: int = 0
    last_oom: bool = False
    # Why the container is not running while it waits, and the details.
    waiting_reason: str = ""
    waiting_message: str = ""
    pull_failures: int = 0
    # The run (run_key) stopped because its liveness probe failed, and the failure.
    unhealthy_id: str = ""
    unhealthy_message: str = ""
    # imagePullPolicy Always could not pull; the present image was used (and why).
    image_note: str = ""
    # The container last seen for this spec that is still to be counted if it vanishes
    # ("" once a start or restart of it is under way: that one counts for itself).
    seen_id: str = ""


@dataclass(frozen=True, slots=True)
class PullImage:
    pod: str
    container: str
    image: str
    pull_policy: str
    reason: str


@dataclass(frozen=True, slots=True)
class StartContainer:
    """Create and start a container for `spec` (removing nothing)."""

    pod: str
    container: str
    assignment: PodAssignment
    spec: ContainerSpec
    restart_count: int
    reason: str


@dataclass(frozen=True, slots=True)
class RestartContainer:
    """Run the dead container again: start it again as it is or replace it with a new one
    (agent/restart_path.py decides); restart_count is already the new count. `immediate`:
    the back-off let it restart at once."""

    pod: str
    container: str
    container_id: str
    assignment: PodAssignment
    spec: ContainerSpec
    restart_count: int
    reason: str
    immediate: bool = False
    # The dead container as last listed.
    dead: ContainerInfo | None = None


@dataclass(frozen=True, slots=True)
class StopContainer:
    pod: str
    container: str
    container_id: str
    grace_seconds: int
    reason: str


@dataclass(frozen=True, slots=True)
class RemoveContainer:
    pod: str
    container: str
    container_id: str
    reason: str


Action = PullImage | StartContainer | RestartContainer | StopContainer | RemoveContainer


@dataclass(frozen=True, slots=True)
class SyncResult:
    actions: tuple[Action, ...]
    backoff: dict[ContainerKey, ContainerBackoff] = field(default_factory=dict)


def should_restart(restart_policy: str, container: ContainerInfo) -> bool:
    """Kubernetes' restartPolicy applied to an exited container."""
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return container.exit_code != 0 or container.oom_killed
    return True


def pick_current(
    containers: Sequence[ContainerInfo], wanted_hash: str
) -> tuple[ContainerInfo | None, list[ContainerInfo]]:
    """The container that stands for a pod's container, and any duplicates to clean up.

    Prefers a live one with the wanted spec, then any live one, then the newest dead one.
    """
    if not containers:
        return None, []
    ranked = sorted(
        containers,
        key=lambda c: (c.alive, c.spec_hash == wanted_hash, c.started_at, c.id),
        reverse=True,
    )
    return ranked[0], ranked[1:]


def exit_description(exit_code: int, oom_killed: bool) -> str:
    return f"last exit code {exit_code}" + (" (OOMKilled)" if oom_killed else "")


def liveness_failure(message: str) -> str:
    return f"Liveness probe failed: {message}"


def _exit_text(b: ContainerBackoff, current: ContainerInfo) -> str:
    if b.unhealthy_id == current.run_key:
        return liveness_failure(b.unhealthy_message)
    return exit_description(current.exit_code, current.oom_killed)


def _advance(
    b: ContainerBackoff, now: float, *, reset: bool, minimum: float = 0.0
) -> ContainerBackoff:
    delay = 0.0 if reset else b.next_delay
    delay = max(delay, minimum)
    return replace(
        b,
        retry_at=now + delay,
        last_delay=delay,
        next_delay=min(BACKOFF_CAP, max(BACKOFF_INITIAL, delay * 2)),
    )


def record_image_note(
    backoff: Mapping[ContainerKey, ContainerBackoff], key: ContainerKey, note: str
) -> dict[ContainerKey, ContainerBackoff]:
    """The image is ready; `note` says when it is not the pulled one ("" when it is)."""
    b = backoff.get(key, ContainerBackoff())
    if b.image_note == note:
        return dict(backoff)
    return {**backoff, key: replace(b, image_note=note)}


def record_pull_failure(
    backoff: Mapping[ContainerKey, ContainerBackoff], key: ContainerKey, now: float, message: str
) -> dict[ContainerKey, ContainerBackoff]:
    """The image could not be pulled: ErrImagePull first, ImagePullBackOff after, backing off."""
    b = backoff.get(key, ContainerBackoff())
    failures = b.pull_failures + 1
    b = _advance(b, now, reset=False, minimum=BACKOFF_INITIAL)
    reason = ERR_IMAGE_PULL if failures == 1 else IMAGE_PULL_BACKOFF
    waiting = f"{message} (retrying in {b.retry_at - now:g}s)"
    b = replace(b, pull_failures=failures, waiting_reason=reason, waiting_message=waiting)
    return {**backoff, key: b}


def record_start_failure(
    backoff: Mapping[ContainerKey, ContainerBackoff], key: ContainerKey, now: float, message: str
) -> dict[ContainerKey, ContainerBackoff]:
    """The container could not be created or started (port taken...): back off and say why."""
    b = _advance(backoff.get(key, ContainerBackoff()), now, reset=False, minimum=BACKOFF_INITIAL)
    waiting = f"{message} (retrying in {b.retry_at - now:g}s)"
    b = replace(b, waiting_reason=CREATE_CONTAINER_ERROR, waiting_message=waiting)
    return {**backoff, key: b}


def record_config_failure(
    backoff: Mapping[ContainerKey, ContainerBackoff], key: ContainerKey, now: float, message: str
) -> dict[ContainerKey, ContainerBackoff]:
    """The container may not run as configured (runAsNonRoot and a root image): back off
    and wait in CreateContainerConfigError with the kubelet's sentence as it is."""
    b = _advance(backoff.get(key, ContainerBackoff()), now, reset=False, minimum=BACKOFF_INITIAL)
    b = replace(b, waiting_reason=CREATE_CONTAINER_CONFIG_ERROR, waiting_message=message)
    return {**backoff, key: b}


def _teardown(
    pod: str, containers: Sequence[ContainerInfo], grace: int | None, reason: str
) -> list[Action]:
    stops: list[Action] = []
    removes: list[Action] = []
    for c in sorted(containers, key=lambda c: (c.container, c.id)):
        if c.alive:
            seconds = grace if grace is not None else c.grace_seconds
            stops.append(StopContainer(pod, c.container, c.id, seconds, reason))
        removes.append(RemoveContainer(pod, c.container, c.id, reason))
    return stops + removes


def _start(a: PodAssignment, spec: ContainerSpec, restart_count: int, reason: str) -> list[Action]:
    if spec.config_error:
        return []  # a ConfigMap or Secret it needs is missing: wait (CreateContainerConfigError)
    return [
        PullImage(a.name, spec.name, spec.image, spec.image_pull_policy, reason),
        StartContainer(a.name, spec.name, a, spec, restart_count, reason),
    ]


def _from_status(a: PodAssignment, container: str) -> ContainerBackoff:
    """The bookkeeping of a container this agent knows nothing of (a new pod, or a restarted
    agent's first sight of it): its count where the pod's status at the master left it, and
    the container that status named, so that one being gone counts as a restart. The
    kubelet's count is the pod status's too when the runtime has no container to count
    from; without it, a restarted agent whose pod's sandbox died before it listed the pod
    (agent/runtime/sandbox.py's sweep took the containers) made them again from 0."""
    seen = a.seen.get(container)
    if seen is None:
        return ContainerBackoff()
    return ContainerBackoff(restart_count=seen.restart_count, seen_id=seen.container_id)


def _sync_container(
    a: PodAssignment,
    spec: ContainerSpec,
    mine: Sequence[ContainerInfo],
    b: ContainerBackoff,
    now: float,
    sick: Unhealthy | None,
) -> tuple[list[Action], ContainerBackoff]:
    wanted = spec_hash(spec)
    current, extras = pick_current(mine, wanted)
    actions = _teardown(
        a.name, extras, a.spec.termination_grace_period_seconds, "duplicate container"
    )
    if current is None:
        if now < b.retry_at:
            return actions, b
        why = f"retrying after {b.waiting_reason}" if b.waiting_reason else "pod assigned"
        if b.seen_id:
            b = replace(b, restart_count=b.restart_count + 1, seen_id="")
            why = f"container gone from the engine; restart #{b.restart_count}"
        return actions + _start(a, spec, b.restart_count, why), b
    b = replace(b, restart_count=max(b.restart_count, current.restart_count), seen_id=current.id)
    if current.spec_hash != wanted:
        actions += _teardown(
            a.name, [current], a.spec.termination_grace_period_seconds, "spec changed"
        )
        return actions + _start(a, spec, b.restart_count, "spec changed"), ContainerBackoff(
            restart_count=b.restart_count
        )
    if current.state == "created":
        actions.append(RemoveContainer(a.name, spec.name, current.id, "created but never started"))
        b = replace(b, seen_id="")
        return actions + _start(a, spec, b.restart_count, "created but never started"), b
    if current.alive:
        if b.waiting_reason:
            b = replace(b, waiting_reason="", waiting_message="", pull_failures=0)
        if sick is not None and sick.container_id == current.id:
            b = replace(b, unhealthy_id=current.run_key, unhealthy_message=sick.message)
            grace = a.spec.termination_grace_period_seconds
            why = f"{liveness_failure(sick.message)}; the container will be restarted"
            actions.append(StopContainer(a.name, spec.name, current.id, grace, why))
        return actions, b
    # A container killed as unhealthy has failed, whatever its exit code says.
    failed = b.unhealthy_id == current.run_key and a.spec.restart_policy == "OnFailure"
    if not (failed or should_restart(a.spec.restart_policy, current)):
        return actions, b
    if b.handled_exit != current.run_key:
        ran = current.finished_at - current.started_at if current.started_at else 0.0
        b = _advance(b, now, reset=ran >= BACKOFF_RESET_AFTER)
        exit_text = _exit_text(b, current)
        b = replace(
            b,
            handled_exit=current.run_key,
            last_exit_code=current.exit_code,
            last_oom=current.oom_killed,
            waiting_reason=CRASH_LOOP_BACKOFF,
            waiting_message=(
                f"back-off {b.retry_at - now:g}s restarting failed container {spec.name} "
                f"in pod {a.name}: {exit_text}"
            ),
        )
    if now < b.retry_at:
        return actions, b
    b = replace(b, restart_count=b.restart_count + 1, seen_id="")
    what = "failed its liveness probe" if b.unhealthy_id == current.run_key else "exited"
    reason = f"container {what} ({_exit_text(b, current)}); restart #{b.restart_count}"
    if spec.config_error:
        return actions, b  # restarted once what it needs is there again
    actions.append(
        RestartContainer(
            a.name,
            spec.name,
            current.id,
            a,
            spec,
            b.restart_count,
            reason,
            immediate=b.last_delay == 0,
            dead=current,
        )
    )
    return actions, b


def note_seen(
    backoff: Mapping[ContainerKey, ContainerBackoff], observed: Sequence[ContainerInfo]
) -> dict[ContainerKey, ContainerBackoff]:
    """Before the first assignment set (a restarted agent only observes): each container
    found is seen, with its labelled restart count, so one gone before the set arrives
    (its pod's sandbox died meanwhile) is made again as one more restart, not as restart 0."""
    noted = dict(backoff)
    for c in observed:
        if not c.container:
            continue
        b = noted.get((c.pod, c.container), ContainerBackoff())
        count = max(b.restart_count, c.restart_count)
        noted[(c.pod, c.container)] = replace(b, restart_count=count, seen_id=c.id)
    return noted


def sync(
    desired: Mapping[str, PodAssignment],
    observed: Sequence[ContainerInfo],
    now: float,
    backoff: Mapping[ContainerKey, ContainerBackoff],
    fence_reason: str = "",
    unhealthy: Mapping[ContainerKey, Unhealthy] | None = None,
) -> SyncResult:
    """Decides what to do about every pod, desired or found; see the module docstring.

    A non-empty `fence_reason` overrides everything: every container is stopped and
    removed (the node has lost its lease, so its pods may be running elsewhere).
    `unhealthy`: containers whose liveness probe failed, by (pod, container).
    """
    unhealthy = unhealthy or {}
    by_pod: dict[str, list[ContainerInfo]] = {}
    for c in observed:
        by_pod.setdefault(c.pod, []).append(c)
    if fence_reason:
        fenced: list[Action] = []
        for name in sorted(by_pod):
            fenced += _teardown(name, by_pod[name], None, fence_reason)
        return SyncResult(tuple(fenced), {})
    actions: list[Action] = []
    new_backoff: dict[ContainerKey, ContainerBackoff] = {}
    for name in sorted(desired):
        a = desired[name]
        containers = by_pod.get(name, [])
        if a.stop:
            grace = a.spec.termination_grace_period_seconds
            actions += _teardown(name, containers, grace, "the master ordered the pod stopped")
            continue
        spec_names = {spec.name for spec in a.spec.containers}
        leftovers = [c for c in containers if c.container not in spec_names]
        actions += _teardown(
            name, leftovers, a.spec.termination_grace_period_seconds, "container not in pod spec"
        )
        for spec in a.spec.containers:
            key = (name, spec.name)
            mine = [c for c in containers if c.container == spec.name]
            b = backoff[key] if key in backoff else _from_status(a, spec.name)
            done, b = _sync_container(a, spec, mine, b, now, unhealthy.get(key))
            actions += done
            new_backoff[key] = b
    for name in sorted(set(by_pod) - set(desired)):
        actions += _teardown(name, by_pod[name], None, "pod is no longer assigned to this node")
    return SyncResult(tuple(actions), new_backoff)
