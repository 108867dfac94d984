"""How a crashed container is run again: started again as it is, or replaced (pure).

Replacing (rename the dead one, create a new one, start it, remove the old one) is
several engine calls; starting the dead container again is one `start` (and, after it, a
rename that records it, see port.RESTARTED_MARK). It is taken only when all of these hold:
- the backoff restarts it at once (the first restart, or the first after ten minutes
  of running): only there is the engine's time the whole wait; after a back-off of a
  second or more the replacement's cost is small beside it;
- the container exited (not `dead`, which the engine could not clean up, nor `created`);
- it has not been started again in place before: each container runs at most twice,
  so at most one run's files are left in its writable layer, and the next restart
  gets a new container, as Kubernetes always does (the difference: Kubernetes' first
  restart starts from a clean writable layer; here the second run sees what the first
  one wrote outside its volumes, as Docker's own restart policy does);
- what it was created with is what the agent would create now (port.LABEL_CONFIG_HASH:
  spec, Service variables, DNS, mounts, epoch); containers from before the label have
  none and are replaced.
A container with a network of its own whose pod has a running standby holder
(ContainerInfo.standby_id, agent/runtime/sandbox.py: as listed, or as the runtime, which
knows one it made before any listing shows it, says at the restart) is always replaced,
by a container joined to that holder: that start makes no network and need not wait for
the dead one's network cleanup, which starting the dead one again does.
Everything else (restartCount, lastState, events, CrashLoopBackOff) is decided in
agent/sync.py before this and is the same on both paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.runtime.port import LABEL_CONFIG_HASH, ContainerConfig, ContainerInfo


@dataclass(frozen=True, slots=True)
class RestartPath:
    in_place: bool
    # Why the container is replaced rather than started again ("" when in place).
    why_not: str = ""


def restart_path(dead: ContainerInfo, wanted: ContainerConfig, immediate: bool) -> RestartPath:
    """Whether the dead container may be started again as it is (see the module doc)."""
    if dead.standby_id and not dead.sandbox_id:
        return RestartPath(False, "its pod's standby sandbox runs")
    if not immediate:
        return RestartPath(False, "the restart waited out a back-off")
    if dead.state != "exited":
        return RestartPath(False, f"the container is {dead.state}, not exited")
    if dead.restarted_at:
        return RestartPath(False, "the container was already started again in place once")
    had = dead.labels.get(LABEL_CONFIG_HASH, "")
    if not had or had != wanted.labels.get(LABEL_CONFIG_HASH, ""):
        return RestartPath(False, "what the container runs with has changed")
    return RestartPath(True)
