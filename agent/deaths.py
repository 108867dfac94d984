"""What a container's `die` event tells the agent, beside its last container list (pure).

A die event is decided from that one container: the worker inspects it (Docker answers an
inspect only once it has recorded the exit: the container's lock is held until then) and
the state machine puts that answer in place of the container in its last list
(`with_death`), then syncs that pod alone. Listing every container first cost a list
call, and Docker's list shows the container running until the engine has cleaned it up,
so the worker listed again every DIE_RECHECK_SECONDS until it did.

Once the container runs again (started again in place, or replaced), the same last list
with the new run in its place (`with_run`) is reported at once: the list that follows the
pod's task would otherwise be what reports it (a list of every container, 10-280 ms at
load 37).

That relisting remains for a die event the inspect could not answer (`pending_deaths`):
such an event is remembered until a list shows that container no longer alive, for at
most DIE_RECHECK_FOR seconds. The periodic full relist stays the safety net for events
missed altogether (a broken event stream, an agent restart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent.runtime.port import ContainerInfo

# How soon to list again while a died container is still listed alive.
DIE_RECHECK_SECONDS = 0.02
# How long to keep listing fast for one die event (then the relist interval takes over).
DIE_RECHECK_FOR = 1.0


def pending_deaths(
    dying: Mapping[str, float], observed: Sequence[ContainerInfo], now: float
) -> dict[str, float]:
    """The die events (container id -> give up at, monotonic) still not seen in a list."""
    alive = {c.id for c in observed if c.alive}
    return {cid: until for cid, until in dying.items() if cid in alive and now < until}


def with_death(
    observed: Sequence[ContainerInfo], died: ContainerInfo
) -> tuple[ContainerInfo, ...] | None:
    """The last list with `died` (the container as inspected after its die event) in place
    of what the list said of it; None when the inspect is no news to decide on:
    - the container is not dead (started again since);
    - the list does not hold it (not one the agent knew: a relist decides);
    - the list shows a later run of it (the list saw the exit first and the container was
      started again before the inspect's answer came: deciding on it would restart the
      running container a second time)."""
    if not died.dead:
        return None
    patched: list[ContainerInfo] = []
    found = False
    for c in observed:
        if c.id != died.id:
            patched.append(c)
            continue
        if c.started_at > died.started_at:
            return None
        found = True
        patched.append(died)
    return tuple(patched) if found else None


def with_run(
    observed: Sequence[ContainerInfo], ran: ContainerInfo, replaced_id: str
) -> tuple[ContainerInfo, ...]:
    """The last list with `ran` (a container just started, as inspected after its start) in
    place of the dead container it runs for (`replaced_id`: `ran` itself when started again
    in place; a replaced one is removed by then). A list that already shows a later run
    of it is kept as it is."""
    if any(c.id == ran.id and c.started_at > ran.started_at for c in observed):
        return tuple(observed)
    out: list[ContainerInfo] = []
    placed = False
    for c in observed:
        if c.id in (ran.id, replaced_id):
            if not placed:
                out.append(ran)
                placed = True
            continue
        out.append(c)
    if not placed:
        out.append(ran)
    return tuple(out)
