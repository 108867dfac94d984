"""readinessProbe / livenessProbe in manifests: parsing, defaults, every rule's message, -o yaml."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from master.api.render import render_container
from master.model import Container, Deployment, HTTPHeader, Probe, ProbeKind
from tests.unit.test_manifest_support import DEPLOYMENT, dump, error, mutate, parse

C0 = "spec.template.spec.containers[0]"
PREFIX = "deployment.yaml: document 1: "


def with_probes(**probes: Any) -> dict[str, Any]:
    doc = DEPLOYMENT
    for key, value in probes.items():
        doc = mutate(doc, f"{C0}.{key}", value)
    return doc


def probes_of(doc: dict[str, Any]) -> tuple[Probe | None, Probe | None]:
    (dep,) = parse(doc).objects
    assert isinstance(dep, Deployment)
    c = dep.template.spec.containers[0]
    return c.readiness_probe, c.liveness_probe


def test_no_probes_means_none() -> None:
    assert probes_of(DEPLOYMENT) == (None, None)


def test_http_get_probe_takes_kubernetes_defaults() -> None:
    doc = with_probes(readinessProbe={"httpGet": {"path": "/healthz", "port": 80}})

    readiness, liveness = probes_of(doc)

    assert readiness == Probe(
        kind=ProbeKind.HTTP_GET,
        port="80",
        path="/healthz",
        scheme="HTTP",
        initial_delay_seconds=0,
        period_seconds=10,
        timeout_seconds=1,
        success_threshold=1,
        failure_threshold=3,
    )
    assert liveness is None


def test_every_field_of_every_handler_is_read() -> None:
    doc = with_probes(
        readinessProbe={
            "httpGet": {
                "port": "http",
                "scheme": "HTTP",
                "httpHeaders": [{"name": "X-Probe", "value": "ready"}],
            },
            "initialDelaySeconds": 2,
            "periodSeconds": 3,
            "timeoutSeconds": 4,
            "successThreshold": 2,
            "failureThreshold": 5,
        },
        livenessProbe={"exec": {"command": ["cat", "/tmp/alive"]}, "failureThreshold": 1},
    )

    readiness, liveness = probes_of(doc)

    assert readiness == Probe(
        kind=ProbeKind.HTTP_GET,
        port="http",
        path="/",
        http_headers=(HTTPHeader("X-Probe", "ready"),),
        initial_delay_seconds=2,
        period_seconds=3,
        timeout_seconds=4,
        success_threshold=2,
        failure_threshold=5,
    )
    assert liveness == Probe(
        kind=ProbeKind.EXEC, command=("cat", "/tmp/alive"), failure_threshold=1
    )


def test_tcp_socket_probe_by_number_and_by_name() -> None:
    by_number = with_probes(livenessProbe={"tcpSocket": {"port": 8080}})
    by_name = with_probes(livenessProbe={"tcpSocket": {"port": "http"}})

    assert probes_of(by_number)[1] == Probe(kind=ProbeKind.TCP_SOCKET, port="8080")
    assert probes_of(by_name)[1] == Probe(kind=ProbeKind.TCP_SOCKET, port="http")


def test_startup_probe_is_still_only_a_warning() -> None:
    doc = with_probes(startupProbe={"httpGet": {"port": 80}})

    parsed = parse(doc)

    assert parsed.warnings == (
        PREFIX + f'Deployment "web": {C0}.startupProbe: not supported yet, ignored',
    )


def test_probe_level_grace_period_is_a_warning() -> None:
    doc = with_probes(livenessProbe={"tcpSocket": {"port": 80}, "terminationGracePeriodSeconds": 5})

    parsed = parse(doc)

    assert parsed.warnings == (
        PREFIX + f'Deployment "web": {C0}.livenessProbe.terminationGracePeriodSeconds: '
        "not supported yet, ignored",
    )


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (
            {"periodSeconds": 5},
            "readinessProbe: must set exactly one of httpGet, tcpSocket or exec",
        ),
        (
            {"httpGet": {"port": 80}, "exec": {"command": ["true"]}},
            "readinessProbe: must set exactly one of httpGet, tcpSocket or exec, "
            "got httpGet and exec",
        ),
        (
            {"grpc": {"port": 9000}},
            "readinessProbe.grpc: not supported yet; use httpGet, tcpSocket or exec",
        ),
        ({"httpGet": {"path": "/"}}, "readinessProbe.httpGet.port: is required"),
        (
            {"httpGet": {"port": 0}},
            "readinessProbe.httpGet.port: must be an integer from 1 to 65535, got 0",
        ),
        (
            {"httpGet": {"port": 70000}},
            "readinessProbe.httpGet.port: must be an integer from 1 to 65535, got 70000",
        ),
        (
            {"httpGet": {"port": "metrics"}},
            'readinessProbe.httpGet.port: no port of this container is named "metrics" '
            '(its named ports: "http")',
        ),
        (
            {"tcpSocket": {"port": True}},
            "readinessProbe.tcpSocket.port: must be a port number from 1 to 65535 or a "
            "container port name, got true",
        ),
        (
            {"httpGet": {"port": 80, "scheme": "HTTPS"}},
            'readinessProbe.httpGet.scheme: HTTPS is not supported yet; use "HTTP"',
        ),
        (
            {"httpGet": {"port": 80, "scheme": "FTP"}},
            'readinessProbe.httpGet.scheme: must be "HTTP", got "FTP"',
        ),
        (
            {"httpGet": {"port": 80, "host": "10.0.0.1"}},
            "readinessProbe.httpGet.host: not supported yet; leave it out to probe the pod's "
            "own address",
        ),
        (
            {"httpGet": {"port": 80, "path": "/a b"}},
            "readinessProbe.httpGet.path: must be a URL path without spaces or control "
            'characters, got "/a b"',
        ),
        (
            {"httpGet": {"port": 80, "httpHeaders": [{"name": "Bad Header", "value": "x"}]}},
            "readinessProbe.httpGet.httpHeaders[0].name: must be a valid HTTP header name, "
            'got "Bad Header"',
        ),
        (
            {"httpGet": {"port": 80, "httpHeaders": [{"name": "X", "value": "a\r\nB: c"}]}},
            "readinessProbe.httpGet.httpHeaders[0].value: must not contain line breaks",
        ),
        (
            {"httpGet": {"port": 80, "pth": "/"}},
            'readinessProbe.httpGet.pth: unknown field (did you mean "path"?)',
        ),
        (
            {"exec": {"command": []}},
            "readinessProbe.exec.command: is required (the command to run in the container)",
        ),
        (
            {"exec": {"command": "true"}},
            'readinessProbe.exec.command: must be a list, got "true"',
        ),
        (
            {"tcpSocket": {"port": 80}, "periodSeconds": 0},
            "readinessProbe.periodSeconds: must be an integer >= 1, got 0",
        ),
        (
            {"tcpSocket": {"port": 80}, "timeoutSeconds": 0},
            "readinessProbe.timeoutSeconds: must be an integer >= 1, got 0",
        ),
        (
            {"tcpSocket": {"port": 80}, "failureThreshold": 0},
            "readinessProbe.failureThreshold: must be an integer >= 1, got 0",
        ),
        (
            {"tcpSocket": {"port": 80}, "successThreshold": 0},
            "readinessProbe.successThreshold: must be an integer >= 1, got 0",
        ),
        (
            {"tcpSocket": {"port": 80}, "initialDelaySeconds": -1},
            "readinessProbe.initialDelaySeconds: must be an integer >= 0, got -1",
        ),
        (
            {"tcpSocket": {"port": 80}, "periodSecond": 5},
            'readinessProbe.periodSecond: unknown field (did you mean "periodSeconds"?)',
        ),
        ("yes", 'readinessProbe: must be a map, got "yes"'),
    ],
)
def test_invalid_readiness_probes_are_refused_with_one_sentence(probe: Any, message: str) -> None:
    doc = with_probes(readinessProbe=probe)

    assert error(doc) == PREFIX + f"{C0}.{message}"


def test_liveness_success_threshold_must_be_one() -> None:
    doc = with_probes(livenessProbe={"tcpSocket": {"port": 80}, "successThreshold": 2})

    assert error(doc) == PREFIX + f"{C0}.livenessProbe.successThreshold: must be 1 for a " + (
        "liveness probe, got 2"
    )


def test_readiness_success_threshold_above_one_is_fine() -> None:
    doc = with_probes(readinessProbe={"tcpSocket": {"port": 80}, "successThreshold": 3})

    assert probes_of(doc)[0] == Probe(kind=ProbeKind.TCP_SOCKET, port="80", success_threshold=3)


def test_a_named_port_of_another_container_does_not_count() -> None:
    doc = with_probes(livenessProbe={"tcpSocket": {"port": "admin"}})
    sidecar = {"name": "side", "image": "busybox", "ports": [{"containerPort": 9, "name": "admin"}]}
    doc = mutate(doc, "spec.template.spec.containers[1]", sidecar)

    assert error(doc) == PREFIX + (
        f'{C0}.livenessProbe.tcpSocket.port: no port of this container is named "admin" '
        '(its named ports: "http")'
    )


def test_a_named_udp_port_cannot_be_probed() -> None:
    doc = mutate(
        DEPLOYMENT, f"{C0}.ports", [{"containerPort": 53, "protocol": "UDP", "name": "dns"}]
    )
    doc = mutate(doc, f"{C0}.readinessProbe", {"tcpSocket": {"port": "dns"}})

    assert error(doc) == PREFIX + (
        f'{C0}.readinessProbe.tcpSocket.port: port "dns" is UDP; probes need TCP'
    )


def test_probes_render_back_and_reapply_to_the_same_container() -> None:
    doc = with_probes(
        readinessProbe={
            "httpGet": {
                "path": "/healthz",
                "port": "http",
                "httpHeaders": [{"name": "A", "value": "b"}],
            },
            "periodSeconds": 2,
        },
        livenessProbe={"exec": {"command": ["true"]}, "initialDelaySeconds": 4},
    )
    (dep,) = parse(doc).objects
    assert isinstance(dep, Deployment)
    container = dep.template.spec.containers[0]

    rendered = render_container(container)
    again = mutate(DEPLOYMENT, f"{C0}", yaml.safe_load(dump(rendered)))
    (dep2,) = parse(again).objects

    assert rendered["readinessProbe"] == {
        "httpGet": {
            "path": "/healthz",
            "port": "http",
            "scheme": "HTTP",
            "httpHeaders": [{"name": "A", "value": "b"}],
        },
        "initialDelaySeconds": 0,
        "timeoutSeconds": 1,
        "periodSeconds": 2,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert rendered["livenessProbe"]["exec"] == {"command": ["true"]}
    assert isinstance(dep2, Deployment)
    assert dep2.template.spec.containers[0] == container


def test_a_numeric_port_renders_as_a_number() -> None:
    rendered = render_container(
        probes_container(
            Probe(kind=ProbeKind.TCP_SOCKET, port="8080"), Probe(kind=ProbeKind.HTTP_GET, port="80")
        )
    )

    assert rendered["readinessProbe"]["tcpSocket"] == {"port": 8080}
    assert rendered["livenessProbe"]["httpGet"]["port"] == 80
    assert "readinessProbe" not in render_container(probes_container(None, None))


def probes_container(readiness: Probe | None, liveness: Probe | None) -> Container:
    return Container("c", "img", readiness_probe=readiness, liveness_probe=liveness)
