"""A container's die event as the facts of its death, where the event is enough (pure).

Docker's die event carries the exit code and the container's name beside its labels; the
kernel's OOM kill is announced by an `oom` event before it. The engine itself counts an
exit as OOMKilled when containerd's OOM notice came before the exit (its event loop
carries the flag over to the exit that follows), and logs the `oom` event as it handles
that notice, before the exit's `die` (a container's events are handled in order): an oom
event before the die is what an inspect's OOMKilled would say (8 of 8 OOM kills here).
With the agent's last list, which holds the run that died (its id, name, labels,
StartedAt, image), that is everything a restart is decided from.
Inspecting the died container first costs one engine round trip after the engine's
cleanup of the exit (it holds the container's lock until then), and the `start` that
follows waits for that cleanup anyway: deciding from the event takes the inspect off the
way to running again.

The event stands in for the inspect only where the difference cannot matter:
- the last list shows that container running, with the event's pod, container and name,
  in a run begun before the die (so the run that died is the one the agent knows);
- its pod is assigned with the same spec, and what it needs is there (no config error);
- restartPolicy restarts it, and the back-off restarts it at once (its first restart, or
  the first after ten minutes of running): the dead state shows for a moment only, and
  a restart that waits has time for the inspect.
Everything else is inspected, as before (agent/deaths.py). What the event does not give
exactly: FinishedAt (the event's time, stamped a few ms after it; only the ten-minute
reset of the back-off reads it, and a death near that mark is inspected), and the
engine's State.Error (empty after a process's own exit). The restart count, the
back-off, the reasons and the reports are decided by agent/sync.py from these facts
exactly as from an inspect's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from agent.model import PodAssignment, spec_hash
from agent.runtime.port import ContainerInfo, RuntimeEvent
from agent.sync import BACKOFF_RESET_AFTER, ContainerBackoff, should_restart

# How much later than the engine's FinishedAt a die event may be stamped (it is logged once
# the engine has handled the exit: milliseconds, seconds on a stalled engine).
EVENT_TIME_SLACK = 5.0


@dataclass(frozen=True, slots=True)
class EventVerdict:
    """The died container as the event describes it, or why the event is not enough."""

    died: ContainerInfo | None
    why_not: str = ""


def _no(why: str) -> EventVerdict:
    return EventVerdict(None, why)


def death_from_event(
    event: RuntimeEvent,
    observed: Sequence[ContainerInfo],
    desired: Mapping[str, PodAssignment],
    backoff: Mapping[tuple[str, str], ContainerBackoff],
    oom_at: float = 0.0,
) -> EventVerdict:
    """The container of a die `event` as an inspect after it would describe it, when the
    restart it leads to goes at once (see the module doc); else why it must be inspected.
    `oom_at`: the time of the container's last oom event (0.0: none)."""
    if event.action != "die" or event.exit_code is None or not event.name or not event.at:
        return _no("the event does not say how the container ended")
    listed = next((c for c in observed if c.id == event.container_id), None)
    if listed is None:
        return _no("the last list does not hold the container")
    if not listed.alive:
        return _no(f"the last list shows the container {listed.state}")
    if (listed.pod, listed.container, listed.name) != (event.pod, event.container, event.name):
        return _no("the container's name or labels differ from the last list's")
    if event.at < listed.started_at:
        return _no("the die is older than the run the last list shows")
    assignment = desired.get(listed.pod)
    specs = assignment.spec.containers if assignment is not None else ()
    spec = next((s for s in specs if s.name == listed.container), None)
    if assignment is None or spec is None or assignment.stop:
        return _no("the container is not assigned to run")
    if spec.config_error or listed.spec_hash != spec_hash(spec):
        return _no("the container is not the one its spec asks for")
    died = replace(
        listed,
        state="exited",
        exit_code=event.exit_code,
        oom_killed=oom_at > 0 and oom_at >= listed.started_at,
        finished_at=event.at,
        error="",
        ports={},
        address="",
        probe_address="",
        pid=0,
    )
    b = backoff.get((listed.pod, listed.container), ContainerBackoff())
    policy = assignment.spec.restart_policy
    # A container the agent stopped for its liveness probe failed, whatever its exit code.
    failed_probe = b.unhealthy_id == listed.run_key and policy == "OnFailure"
    if not (failed_probe or should_restart(policy, died)):
        return _no(f"restartPolicy {policy} does not restart it")
    ran = died.finished_at - died.started_at if died.started_at else 0.0
    if b.handled_exit == died.run_key:
        return _no("its exit was handled already")
    # The event's time is a little after the engine's FinishedAt: near the ten-minute mark
    # only the inspect's FinishedAt says whether the back-off starts again from nothing.
    if b.next_delay > 0 and ran < BACKOFF_RESET_AFTER + EVENT_TIME_SLACK:
        return _no(f"the back-off delays its restart {b.next_delay:g}s")
    return EventVerdict(died)
