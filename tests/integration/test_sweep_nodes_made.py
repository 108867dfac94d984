"""The session's last sweep (tests/support.py `sweep_nodes_made`) removes a test node's
container that the engine created after the test's own teardown had listed them: a create
in flight when its agent was killed."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from tests.support import node_made, remove_container, sweep_nodes_made

pytestmark = pytest.mark.integration


def test_a_container_created_after_the_teardown_listed_is_swept(docker_client: Any) -> None:
    node = node_made(f"sweep-{uuid.uuid4().hex[:6]}")
    created: list[str] = []

    def late_create() -> None:
        made = docker_client.api.create_container(
            "pinnace/pause:latest", labels={"pinnace.node": node}
        )
        created.append(made["Id"])

    late = threading.Timer(0.3, late_create)
    late.start()
    try:
        removed = sweep_nodes_made(docker_client, quiet=1.0)
        late.join(timeout=30)
        assert created and created[0] in removed
        left = docker_client.api.containers(all=True, filters={"label": f"pinnace.node={node}"})
        assert left == []
    finally:
        late.cancel()
        late.join(timeout=30)
        for container_id in created:
            remove_container(docker_client, container_id)
