"""Shared fixtures for integration tests: a Docker engine, the test images, a cluster.

Under CI=true a missing Docker engine or image is a failure, not a skip: the
integration tests are the point of CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.cluster import LocalCluster

IN_CI = os.environ.get("CI", "").lower() == "true"
REQUIRED_IMAGES = ("nginx:latest", "pinnace/httpd:latest")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: integration tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:  # the SDK raises several types for "no engine"
        _unavailable(f"no Docker engine: {e}")
    for image in REQUIRED_IMAGES:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            _unavailable(f"image {image} is missing: run `make images`")
    yield client
    client.close()


@pytest.fixture
def cluster(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path, docker_client)
    try:
        yield c
    finally:
        c.close()
