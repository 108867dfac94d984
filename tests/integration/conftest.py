"""Shared fixtures for integration tests: a Docker engine, the test images, a cluster.

Under CI (tests/support.py's rule) a missing Docker engine or image is a failure, not a
skip: the integration tests are the point of CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.cluster import LocalCluster, remove_local_route, service_range
from tests.support import sweep_nodes_made, unavailable

REQUIRED_IMAGES = ("nginx:latest", "pinnace/httpd:latest", "pinnace/pause:latest")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # the SDK raises several types for "no engine"
        unavailable(f"no Docker engine: {e}")
    for image in REQUIRED_IMAGES:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            unavailable(f"image {image} is missing: run `make images`")
    yield client
    sweep_nodes_made(client)
    client.close()


@pytest.fixture
def cluster(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path, docker_client)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def service_cidr() -> Iterator[str]:
    """The test's own service range; the route its node proxies make local goes with it."""
    network = service_range()
    try:
        yield str(network)
    finally:
        remove_local_route(network)
