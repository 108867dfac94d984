"""Integration tests of the images `make images` builds (compose/images/build.sh).

Why: the other integration and e2e tests, the demo and the seed manifests run `nginx:latest`
and `pinnace/httpd:latest`, built here from Debian's packages because no registry can be
pulled from. These tests pin down what they rely on: the images exist, serve a page on port 80
that names the container's hostname (so replicas can be told apart behind a load balancer),
stop promptly, and pinnace/httpd crashes on demand (CRASH_AFTER, EXIT_CODE).

How: each test starts its own containers through the Docker SDK with port 80 published on
127.0.0.1, polls them with a deadline, and the `run` fixture removes every container by id
afterwards. Without a Docker engine the module is skipped, except under CI=true, where that
is a failure.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from docker.errors import DockerException, ImageNotFound
from docker.models.containers import Container

from tests.support import remove_container, unavailable

pytestmark = pytest.mark.integration

NGINX = "nginx:latest"
HTTPD = "pinnace/httpd:latest"
# `docker stop` sends SIGTERM and, this many seconds later, SIGKILL: an image that ends on
# SIGTERM exits 0, one that ignores it is killed (137). The exit code tells them apart, on a
# machine of any load (a time limit would not).
STOP_GRACE_S = 30

RunContainer = Callable[..., Container]  # run(image, *, hostname=None, environment=None)


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        unavailable(f"no Docker engine answers ({exc})")
    yield client
    client.close()


@pytest.fixture
def run(engine: docker.DockerClient) -> Iterator[RunContainer]:
    """Starts detached containers publishing port 80 on 127.0.0.1; removes each by id."""
    started: list[str] = []

    def start(
        image: str, *, hostname: str | None = None, environment: dict[str, str] | None = None
    ) -> Container:
        _require_image(engine, image)
        # None asks the engine for a free host port.
        ports: dict[str, Any] = {"80/tcp": ("127.0.0.1", None)}
        container = engine.containers.run(
            image, detach=True, ports=ports, hostname=hostname, environment=environment
        )
        started.append(_id_of(container))
        return container

    yield start
    for container_id in started:
        # A container already gone leaves nothing of ours behind.
        remove_container(engine, container_id)


def _require_image(engine: docker.DockerClient, image: str) -> None:
    try:
        engine.images.get(image)
    except ImageNotFound:
        pytest.fail(f"image {image} is missing: run `make images`", pytrace=False)


def _id_of(container: Container) -> str:
    container_id = container.id
    assert container_id is not None, "the engine returned a container without an id"
    return container_id


def _host_port(container: Container) -> int:
    container.reload()
    bindings = container.ports["80/tcp"]
    assert bindings, f"port 80 of {container.name} is not published"
    return int(bindings[0]["HostPort"])


def _get_page(container: Container, path: str = "/", deadline_s: float = 60.0) -> tuple[int, str]:
    """GETs the container's page, retrying while its server is still starting."""
    url = f"http://127.0.0.1:{_host_port(container)}{path}"
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                container.reload()
                logs = container.logs().decode(errors="replace")
                raise AssertionError(
                    f"{url} did not answer within {deadline_s}s "
                    f"(container {container.status}); logs:\n{logs}"
                ) from None
            time.sleep(0.1)


def _timed_stop(container: Container) -> float:
    started = time.monotonic()
    container.stop(timeout=STOP_GRACE_S)
    return time.monotonic() - started


@pytest.mark.parametrize("image", [NGINX, HTTPD])
def test_image_exists_and_exposes_port_80(engine: docker.DockerClient, image: str) -> None:
    _require_image(engine, image)

    config = engine.images.get(image).attrs["Config"]

    assert "80/tcp" in (config.get("ExposedPorts") or {})


def test_nginx_serves_welcome_page_naming_its_hostname(run: RunContainer) -> None:
    container = run(NGINX)

    status, body = _get_page(container)

    assert status == 200
    assert "Welcome to nginx!" in body
    assert _id_of(container)[:12] in body


def test_nginx_answers_404_for_a_missing_page(run: RunContainer) -> None:
    container = run(NGINX)

    status, _ = _get_page(container, "/no-such-page")

    assert status == 404


def test_nginx_logs_requests_to_stdout(run: RunContainer) -> None:
    container = run(NGINX)
    _get_page(container, "/logged-path")

    deadline = time.monotonic() + 30
    while b"GET /logged-path" not in container.logs(stdout=True, stderr=False):
        assert time.monotonic() < deadline, "the access log line never reached stdout"
        time.sleep(0.1)


def test_two_nginx_containers_serve_different_hostnames(run: RunContainer) -> None:
    first, second = run(NGINX, hostname="web-a"), run(NGINX, hostname="web-b")

    _, first_body = _get_page(first)
    _, second_body = _get_page(second)

    assert "web-a" in first_body and "web-b" not in first_body
    assert "web-b" in second_body and "web-a" not in second_body


def test_httpd_serves_page_naming_its_hostname_and_message(run: RunContainer) -> None:
    container = run(HTTPD, hostname="pod-7", environment={"MESSAGE": "version 2"})

    status, body = _get_page(container)

    assert status == 200
    assert "pod-7" in body
    assert "version 2" in body


@pytest.mark.parametrize(
    ("environment", "expected_code"),
    [({"CRASH_AFTER": "2"}, 1), ({"CRASH_AFTER": "2", "EXIT_CODE": "7"}, 7)],
)
def test_httpd_crashes_on_demand(
    run: RunContainer, environment: dict[str, str], expected_code: int
) -> None:
    container = run(HTTPD, environment=environment)
    status, _ = _get_page(container, "/healthz")

    result = container.wait(timeout=60)

    assert status == 200
    assert result["StatusCode"] == expected_code


@pytest.mark.parametrize("image", [NGINX, HTTPD])
def test_docker_stop_is_prompt(run: RunContainer, image: str) -> None:
    container = run(image)
    _get_page(container)

    elapsed = _timed_stop(container)

    container.reload()
    assert container.status == "exited"
    code = container.attrs["State"]["ExitCode"]
    assert code == 0, f"{image} did not end on SIGTERM (exit {code}) in {elapsed:.1f}s"


@pytest.mark.parametrize("image", [NGINX, HTTPD])
def test_sigterm_ends_the_container_promptly(run: RunContainer, image: str) -> None:
    container = run(image)
    _get_page(container)

    container.kill(signal="SIGTERM")
    result = container.wait(timeout=STOP_GRACE_S)

    assert result["StatusCode"] == 0, f"{image} exited {result['StatusCode']} on SIGTERM"
