"""The apply_to_running bench asks each system only once the engine has been quiet
(tests/bench/engine.py `settle`): on the real engine, a stream of events keeps it waiting,
and when it returns the engine was quiet for the whole window."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.bench.engine import settle
from tests.support import remove_container

pytestmark = pytest.mark.integration


def test_settle_waits_while_the_engine_reports_events(docker_client: Any) -> None:
    stop = threading.Event()
    made: list[str] = []

    def churn() -> None:
        while not stop.is_set():
            made.append(docker_client.api.create_container("pinnace/pause:latest")["Id"])
            remove_container(docker_client, made[-1])
            stop.wait(0.05)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        assert settle(docker_client, quiet=0.3, within=1.5) is None
    finally:
        stop.set()
        worker.join(timeout=30)
        for container_id in made:
            remove_container(docker_client, container_id)
    waited = settle(docker_client, quiet=0.3, within=60.0)
    assert waited is not None and waited >= 0.3
