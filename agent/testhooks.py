"""Test-only: a way to wedge a real agent's event loop on demand (never set in production).

The loop watchdog (agent/watchdog.py) must be tested against a real wedge, not a
simulation: with `PINNACE_TEST_WEDGE_SECONDS=N` in its environment the agent blocks its
own event loop for N seconds (`time.sleep` in a callback on the loop, as a blocking call
made on the loop by mistake would) each time it receives SIGUSR2. Without the variable
nothing is installed and SIGUSR2 keeps its default action. tests/integration/
test_agent_wedge.py uses it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

log = logging.getLogger("pinnace.agent")

WEDGE_ENV = "PINNACE_TEST_WEDGE_SECONDS"


def install_wedge_hook(loop: asyncio.AbstractEventLoop) -> bool:
    """SIGUSR2 blocks `loop` for $PINNACE_TEST_WEDGE_SECONDS; whether it was installed."""
    seconds = float(os.environ.get(WEDGE_ENV, "0") or 0)
    if seconds <= 0:
        return False

    def wedge() -> None:
        log.warning("test hook: wedging the event loop for %gs (%s)", seconds, WEDGE_ENV)
        time.sleep(seconds)  # blocks the loop on purpose: the test's hung agent

    loop.add_signal_handler(signal.SIGUSR2, wedge)
    log.warning("test hook installed: SIGUSR2 wedges the event loop for %gs", seconds)
    return True
