"""Ingress manifests (networking.k8s.io/v1): what is kept, and one sentence per mistake."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from master.api.render import render_object
from master.api.tables import rows_for
from master.model import Ingress, IngressBackend, IngressPath, IngressRule, IngressTLS
from tests.unit.test_manifest_support import error, mutate, parse

PREFIX = "ingress.yaml: document 1: "


def _backend(name: str = "web", number: int = 80) -> dict[str, Any]:
    return {"service": {"name": name, "port": {"number": number}}}


INGRESS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {"name": "web"},
    "spec": {
        "ingressClassName": "pinnace",
        "defaultBackend": _backend("fallback"),
        "tls": [{"hosts": ["a.example.com"], "secretName": "a-tls"}],
        "rules": [
            {
                "host": "a.example.com",
                "http": {
                    "paths": [
                        {"path": "/api", "pathType": "Prefix", "backend": _backend("api", 8080)},
                        {
                            "path": "/",
                            "pathType": "Exact",
                            "backend": {"service": {"name": "web", "port": {"name": "http"}}},
                        },
                    ]
                },
            },
            {"host": "*.example.com", "http": {"paths": [
                {"pathType": "ImplementationSpecific", "backend": _backend()},
            ]}},
        ],
    },
}  # fmt: skip


def only_ingress(doc: dict[str, Any]) -> Ingress:
    (obj,) = parse(doc, file="ingress.yaml").objects
    assert isinstance(obj, Ingress)
    return obj


def test_an_ingress_keeps_hosts_paths_backends_tls_and_its_class() -> None:
    ing = only_ingress(INGRESS)

    assert ing.class_name == "pinnace"
    assert ing.default_backend == IngressBackend("fallback", port_number=80)
    assert ing.rules == (
        IngressRule(
            "a.example.com",
            (
                IngressPath("/api", "Prefix", IngressBackend("api", port_number=8080)),
                IngressPath("/", "Exact", IngressBackend("web", port_name="http")),
            ),
        ),
        IngressRule(
            "*.example.com", (IngressPath("", "ImplementationSpecific", IngressBackend("web", 80)),)
        ),
    )
    assert ing.tls == (IngressTLS(("a.example.com",), "a-tls"),)


def test_a_default_backend_alone_is_enough() -> None:
    doc = mutate(mutate(INGRESS, "spec.rules"), "spec.tls")

    assert only_ingress(doc).rules == ()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec.rules", None, "spec: either defaultBackend or rules must be given"),
        (
            "spec.rules.0.host",
            "10.0.0.1",
            'spec.rules[0].host: must be a DNS name, not an IP address, got "10.0.0.1"',
        ),
        (
            "spec.rules.0.host",
            "a.*.example.com",
            'spec.rules[0].host: a wildcard must be the whole first label ("*.example.com"), '
            'got "a.*.example.com"',
        ),
        (
            "spec.rules.0.http.paths.0.path",
            "api",
            'spec.rules[0].http.paths[0].path: must be an absolute path (starting with "/") '
            'for pathType Prefix, got "api"',
        ),
        (
            "spec.rules.0.http.paths.0.path",
            '/a b"}',
            "spec.rules[0].http.paths[0].path: may only hold letters, digits and "
            '-._~/%:@+,;= (no empty segment), got "/a b\\"}"',
        ),
        (
            "spec.rules.0.http.paths.0.pathType",
            "Regex",
            'spec.rules[0].http.paths[0].pathType: must be one of "Prefix", "Exact", '
            '"ImplementationSpecific", got "Regex"',
        ),
        (
            "spec.rules.0.http.paths.0.backend.service.port",
            {"number": 80, "name": "http"},
            "spec.rules[0].http.paths[0].backend.service.port: give exactly one of number "
            "and name (the Service port)",
        ),
        (
            "spec.defaultBackend",
            {"resource": {"kind": "Bucket", "name": "x"}},
            "spec.defaultBackend.resource: resource backends are not supported; name a "
            "service (service.name, service.port)",
        ),
        (
            "spec.rules.0.http.paths",
            [],
            "spec.rules[0].http.paths: must list at least one path",
        ),
        (
            "spec.rules.0.htp",
            {},
            'spec.rules[0].htp: unknown field (did you mean "http"?)',
        ),
    ],
)
def test_mistakes_are_one_sentence_naming_the_field(path: str, value: Any, message: str) -> None:
    base = mutate(INGRESS, "spec.defaultBackend") if value is None else INGRESS
    doc = mutate(base, path, value)

    assert error(doc, file="ingress.yaml") == PREFIX + message


def test_a_tls_entry_without_a_secret_is_warned_and_left_out() -> None:
    doc = mutate(INGRESS, "spec.tls", [{"hosts": ["a.example.com"]}])

    parsed = parse(doc, file="ingress.yaml")

    (ing,) = parsed.objects
    assert isinstance(ing, Ingress) and ing.tls == ()
    assert parsed.warnings == (
        PREFIX + 'Ingress "web": spec.tls[0].secretName: missing: pinnace has no default '
        "certificate, so these hosts get no HTTPS",
    )


def test_the_api_version_must_be_networking_v1() -> None:
    message = error(mutate(INGRESS, "apiVersion", "extensions/v1beta1"), file="ingress.yaml")

    assert message == (
        PREFIX + 'apiVersion: must be "networking.k8s.io/v1" for kind Ingress, '
        'got "extensions/v1beta1"'
    )


def test_what_get_o_yaml_prints_applies_again_unchanged() -> None:
    ing = only_ingress(INGRESS)
    served = replace(ing, address="127.0.0.1", ports=(8880, 8443))

    rendered = render_object(served, 0.0)

    assert rendered["status"]["loadBalancer"]["ingress"] == [
        {
            "ip": "127.0.0.1",
            "ports": [{"port": 8880, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}],
        }
    ]
    again = only_ingress(rendered)
    assert (again.class_name, again.default_backend, again.rules, again.tls) == (
        ing.class_name,
        ing.default_backend,
        ing.rules,
        ing.tls,
    )
    row = rows_for("Ingress", [rendered], wide=False, now=0.0)[0]
    assert row[:5] == ["web", "pinnace", "a.example.com,*.example.com", "127.0.0.1", "8880, 8443"]


def test_other_controllers_annotations_are_warned_about() -> None:
    annotations = {
        "nginx.ingress.kubernetes.io/rewrite-target": "/",
        "cert-manager.io/cluster-issuer": "letsencrypt",
        "team": "shop",
    }
    doc = mutate(INGRESS, "metadata.annotations", annotations)

    parsed = parse(doc, file="ingress.yaml")

    assert parsed.warnings == (
        PREFIX + 'Ingress "web": metadata.annotations["cert-manager.io/cluster-issuer"], '
        'metadata.annotations["nginx.ingress.kubernetes.io/rewrite-target"]: another ingress '
        "controller's annotation, not acted on by pinnace",
    )
