"""`pinnace describe ingress`: kubectl's describeIngressV1 layout from the `-o json` object."""

from __future__ import annotations

from master.api.render import render_object
from master.cli.describe_ingress import describe_ingress
from master.cli.describe_render import Related
from master.model import (
    Ingress,
    IngressBackend,
    IngressPath,
    IngressRule,
    IngressTLS,
    ObjectMeta,
)

NOW = 1_700_000_600.0


def test_an_ingress_is_described_as_kubectl_does_with_its_backends_endpoints() -> None:
    ing = Ingress(
        meta=ObjectMeta(name="web", created_at=NOW - 60),
        class_name="pinnace",
        default_backend=IngressBackend("fallback", port_number=80),
        rules=(
            IngressRule("a.test", (IngressPath("/", "Prefix", IngressBackend("app", 80)),)),
            IngressRule(
                "", (IngressPath("/api", "Exact", IngressBackend("api", port_name="http")),)
            ),
        ),
        tls=(IngressTLS(("a.test",), "a-tls"),),
        address="127.0.0.1",
        ports=(8880, 8443),
    )
    endpoints = {
        "app": {"subsets": [{"addresses": [{"ip": "10.0.0.5"}], "ports": [{"port": 31001}]}]},
        "fallback": {"subsets": []},
    }
    event = {
        "involvedObject": {"kind": "Ingress", "name": "web"},
        "type": "Warning",
        "reason": "BackendNotFound",
        "message": "spec.rules[1].http.paths[0].backend: service/api does not exist (503)",
        "lastTimestamp": "2023-11-14T22:22:20Z",
        "source": {"component": "master"},
    }

    text = describe_ingress(
        render_object(ing, NOW), Related(events=[event], extra={"endpoints": endpoints}), NOW
    )

    assert text.splitlines() == [
        "Name:             web",
        "Labels:           <none>",
        "Namespace:        default",
        "Address:          127.0.0.1",
        "Ingress Class:    pinnace",
        "Default backend:  fallback:80 (<none>)",
        "TLS:",
        "  a-tls terminates a.test",
        "Rules:",
        "  Host        Path  Backends",
        "  ----        ----  --------",
        "  a.test      ",
        # Go's tabwriter aligns each block of lines on its own, as kubectl prints it.
        "              /   app:80 (10.0.0.5:31001)",
        "  *           ",
        '              /api   api:http (<error: services "api" not found>)',
        "Annotations:  <none>",
        "Events:",
        "  Type     Reason           Age   From    Message",
        "  ----     ------           ----  ----    -------",
        "  Warning  BackendNotFound  60s   master  spec.rules[1].http.paths[0].backend: "
        "service/api does not exist (503)",
    ]
