"""DockerRuntime's reading of `docker inspect` output (no engine needed)."""

from __future__ import annotations

from agent.runtime.docker_runtime import event_from_docker, info_from_inspect
from agent.runtime.port import RuntimeEvent


def test_inspect_output_becomes_container_info() -> None:
    attrs = {
        "Id": "abc123",
        "Name": "/pinnace-n1-p-web",
        "Config": {"Image": "pinnace/httpd:latest", "Labels": {"pinnace.pod": "p"}},
        "State": {
            "Status": "exited",
            "ExitCode": 137,
            "OOMKilled": True,
            "StartedAt": "2024-05-01T12:34:56.123456789Z",
            "FinishedAt": "2024-05-01T12:35:06.5+00:00",
            "Error": "",
        },
        "NetworkSettings": {
            "Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32801"}], "53/udp": None}
        },
    }

    info = info_from_inspect(attrs)

    assert (info.id, info.name, info.image, info.pod) == (
        "abc123",
        "pinnace-n1-p-web",
        "pinnace/httpd:latest",
        "p",
    )
    assert (info.state, info.dead, info.exit_code, info.oom_killed) == ("exited", True, 137, True)
    assert info.started_at == 1714566896.123456
    assert info.finished_at == 1714566906.5
    assert info.ports == {"80/TCP": 32801}


def test_never_started_container_has_zero_times() -> None:
    info = info_from_inspect(
        {"Id": "x", "State": {"Status": "created", "StartedAt": "0001-01-01T00:00:00Z"}}
    )

    assert (info.state, info.started_at, info.alive, info.dead) == ("created", 0.0, False, False)


def _running_on(networks: dict[str, dict[str, str]]) -> dict[str, object]:
    return {
        "Id": "c1",
        "Config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
        "State": {"Status": "running"},
        "NetworkSettings": {"Ports": {"80/tcp": None, "53/udp": None}, "Networks": networks},
    }


def test_on_the_pod_network_the_endpoint_is_the_container_ip_and_container_ports() -> None:
    attrs = _running_on({"pods": {"IPAddress": "172.30.0.7"}, "bridge": {"IPAddress": "10.9.0.2"}})

    info = info_from_inspect(attrs, pod_network="pods")

    assert info.address == "172.30.0.7"
    assert info.ports == {"80/TCP": 80, "53/UDP": 53}


def test_without_a_pod_network_the_container_ip_is_not_the_endpoint() -> None:
    attrs = _running_on({"pods": {"IPAddress": "172.30.0.7"}})

    assert (info_from_inspect(attrs).address, info_from_inspect(attrs).ports) == ("", {})
    # A container not (or no longer) attached to the pod network has no address there.
    other = info_from_inspect(attrs, pod_network="elsewhere")
    assert (other.address, other.ports) == ("", {})


def test_image_id_is_the_first_repo_digest_as_docker_pullable() -> None:
    attrs = {"Id": "c", "Image": "sha256:" + "ab" * 32, "Config": {"Image": "nginx:1.25"}}
    asked: list[str] = []

    def digests(image_id: str) -> tuple[str, ...]:
        asked.append(image_id)
        return ("nginx@sha256:" + "cd" * 32, "mirror/nginx@sha256:" + "cd" * 32)

    info = info_from_inspect(attrs, repo_digests=digests)

    assert info.image_id == "docker-pullable://nginx@sha256:" + "cd" * 32
    assert asked == ["sha256:" + "ab" * 32]


def test_image_id_without_a_digest_is_the_image_id_as_docker() -> None:
    attrs = {"Id": "c", "Image": "sha256:" + "ab" * 32, "Config": {"Image": "local/app:dev"}}

    assert info_from_inspect(attrs, repo_digests=lambda _: ()).image_id == (
        "docker://sha256:" + "ab" * 32
    )
    assert info_from_inspect(attrs).image_id == "docker://sha256:" + "ab" * 32
    assert info_from_inspect({"Id": "c"}, repo_digests=lambda _: ("x@sha256:1",)).image_id == ""


def _event(action: str, **extra: str) -> dict[str, object]:
    """A container event as Docker 20.10 sends it: the labels, name and image as attributes."""
    attributes = {"pinnace.pod": "p", "pinnace.container": "web", "name": "pinnace-n1-p-web"}
    return {
        "status": action,
        "id": "abc123",
        "Type": "container",
        "Action": action,
        "Actor": {"ID": "abc123", "Attributes": {**attributes, "image": "img", **extra}},
        "timeNano": 1_796_106_978_184_692_335,
    }


def test_a_die_event_carries_its_exit_code_and_name() -> None:
    at = 1_796_106_978_184_692_335 / 1e9

    assert event_from_docker(_event("die", exitCode="137")) == RuntimeEvent(
        "die", "abc123", "p", "web", at, exit_code=137, name="pinnace-n1-p-web"
    )
    assert event_from_docker(_event("oom")) == RuntimeEvent(
        "oom", "abc123", "p", "web", at, name="pinnace-n1-p-web"
    )
    # an engine that does not say: unknown, not 0
    assert event_from_docker(_event("die")).exit_code is None  # type: ignore[union-attr]
    assert event_from_docker(_event("die", exitCode="?")).exit_code is None  # type: ignore[union-attr]
    assert event_from_docker(_event("attach")) is None
