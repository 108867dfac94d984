"""Die events the engine's container list has not caught up with yet (pure).

Docker sends a container's `die` event before its list shows the container
exited: a relist right after the event still saw it running, and the restart
then waited for the next relist, up to a second later (most of the 1-2 s a
crashed container took to run again). So a die event is remembered until a list
shows that container no longer alive, and the worker lists again every
DIE_RECHECK_SECONDS meanwhile, for at most DIE_RECHECK_FOR seconds.
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
