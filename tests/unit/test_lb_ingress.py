"""Ingress routing on the load balancer (pure): match order, backends, certificates, problems,
the rendered HAProxy frontends, and which changes need a reload."""

from __future__ import annotations

import base64
import datetime
from dataclasses import replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from master.lb.adopt import decode_state, encode_state
from master.lb.conflicts import Listener, admission_errors, plan_services
from master.lb.ingress import (
    INGRESS_HTTP_HOLDER,
    IngressPlan,
    IngressPorts,
    Problem,
    ingress_reserved,
    ingress_status,
    plan_ingress,
)
from master.lb.ingress_tls import CertificateError, certificate_pem
from master.lb.model import LbAddresses, LbSettings, LbState
from master.lb.plan import plan_runtime
from master.lb.render import render_state
from master.lb.render_ingress import render_cert_list
from master.model import (
    Container,
    ContainerPort,
    Ingress,
    IngressBackend,
    IngressClass,
    IngressPath,
    IngressRule,
    IngressTLS,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    Secret,
    Service,
    ServicePort,
    ServiceType,
)

PORTS = IngressPorts("127.0.0.1", 8880, 8443)


def _svc(name: str, port: int = 80, port_name: str = "http", created: float = 1.0) -> Service:
    return Service(
        meta=ObjectMeta(name=name, created_at=created),
        selector={"app": name},
        ports=(ServicePort(port, "80", name=port_name),),
        type=ServiceType.LOAD_BALANCER,
    )


def _pod(name: str, app: str, host_port: int) -> Pod:
    spec = PodSpec(containers=(Container(name="c", image="x", ports=(ContainerPort(80),)),))
    return Pod(
        meta=ObjectMeta(name=name, labels={"app": app}),
        spec=spec,
        node_name="n1",
        status=PodStatus(
            phase=PodPhase.RUNNING, ready=True, host_ip="10.0.0.5", port_map={"80/TCP": host_port}
        ),
    )


def _to(service: str, port: int = 80) -> IngressBackend:
    return IngressBackend(service, port_number=port)


def _ing(
    name: str,
    *rules: IngressRule,
    created: float = 1.0,
    default: IngressBackend | None = None,
    tls: tuple[IngressTLS, ...] = (),
    class_name: str = "",
) -> Ingress:
    return Ingress(
        meta=ObjectMeta(name=name, created_at=created),
        class_name=class_name,
        default_backend=default,
        rules=rules,
        tls=tls,
    )


def _rule(host: str, *paths: tuple[str, str, str]) -> IngressRule:
    return IngressRule(host, tuple(IngressPath(p, t, _to(s)) for p, t, s in paths))


def _plan(
    ingresses: list[Ingress], services: list[Service], secrets: dict[str, Secret] | None = None
) -> IngressPlan:
    return plan_ingress(ingresses, services, (secrets or {}).values(), [], {}, PORTS)


SERVICES = [_svc("a"), _svc("b"), _svc("c")]


def test_hosts_are_tried_exact_then_wildcard_then_any_and_paths_longest_first() -> None:
    ing = _ing(
        "web",
        _rule("", ("/", "Prefix", "c")),
        _rule("*.example.com", ("/", "Prefix", "b")),
        _rule(
            "a.example.com",
            ("/", "Prefix", "a"),
            ("/api/", "Prefix", "b"),
            ("/api", "Exact", "c"),
            ("/api/v1", "Prefix", "a"),
        ),
    )

    frontend = _plan([ing], SERVICES).frontend

    assert frontend is not None
    assert [h.host for h in frontend.hosts] == ["a.example.com", "*.example.com", ""]
    # Trailing slashes of Prefix paths are ignored; Exact beats Prefix at equal length.
    assert [(r.path, r.exact) for r in frontend.hosts[0].routes] == [
        ("/api/v1", False),
        ("/api", True),
        ("/api", False),
        ("/", False),
    ]


def test_a_missing_service_or_port_is_the_ingress_s_problem_and_answers_503() -> None:
    ing = _ing(
        "web",
        _rule("a.test", ("/", "Prefix", "nope")),
        IngressRule("b.test", (IngressPath("/", "Prefix", IngressBackend("a", port_name="x")),)),
    )
    fine = _ing("fine", _rule("c.test", ("/", "Prefix", "a")), created=2.0)

    plan = _plan([ing, fine], SERVICES)

    assert plan.frontend is not None
    assert [r.backend for h in plan.frontend.hosts for r in h.routes] == [
        None,
        None,
        ("a", "ingress:80"),
    ]
    assert plan.problems == {
        "web": (
            Problem(
                "BackendNotFound",
                "spec.rules[0].http.paths[0].backend: service/nope does not exist (503)",
            ),
            Problem(
                "BackendNotFound",
                "spec.rules[1].http.paths[0].backend: service/a has no port x (503)",
            ),
        )
    }
    assert set(plan.served) == {"web", "fine"}


def test_the_oldest_ingress_keeps_a_route_and_the_default_backend() -> None:
    old = _ing("old", _rule("a.test", ("/x", "Prefix", "a")), default=_to("a"), created=1.0)
    new = _ing("new", _rule("a.test", ("/x/", "Prefix", "b")), default=_to("b"), created=2.0)

    plan = _plan([new, old], SERVICES)

    assert plan.frontend is not None
    assert plan.frontend.default_backend == ("a", "ingress:80")
    assert [r.ingress for r in plan.frontend.hosts[0].routes] == ["old"]
    assert [p.reason for p in plan.problems["new"]] == ["RouteConflict", "DefaultBackendConflict"]
    assert "ingress/old" in plan.problems["new"][0].message


def test_ingresses_of_other_classes_are_ignored_and_say_so() -> None:
    other = _ing("nginx", _rule("a.test", ("/", "Prefix", "a")), class_name="nginx")
    legacy = replace(
        _ing("legacy", _rule("b.test", ("/", "Prefix", "a"))),
        meta=ObjectMeta(name="legacy", annotations={"kubernetes.io/ingress.class": "traefik"}),
    )

    plan = _plan([other, legacy], SERVICES)

    assert plan.frontend is None and plan.backends == ()
    assert {n: p[0].reason for n, p in plan.problems.items()} == {
        "nginx": "IgnoredIngressClass",
        "legacy": "IgnoredIngressClass",
    }


def test_backends_share_the_service_s_endpoints_and_have_no_frontend_of_their_own() -> None:
    ing = _ing("web", _rule("a.test", ("/", "Prefix", "a")), default=_to("a"))
    pods = [_pod("a-1", "a", 31001), _pod("b-1", "b", 31002)]

    plan = plan_ingress([ing], SERVICES, [], pods, {"n1": True}, PORTS)

    (backend,) = plan.backends
    assert (backend.name, backend.port_name, backend.mode, backend.frontend) == (
        "a",
        "ingress:80",
        "http",
        False,
    )
    assert [(e.pod, e.address, e.port, e.ready) for e in backend.endpoints] == [
        ("a-1", "10.0.0.5", 31001, True)
    ]


def _cert(*hosts: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _secret(name: str, cert: bytes, key: bytes) -> Secret:
    data = {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}
    return Secret(ObjectMeta(name=name), "kubernetes.io/tls", data)


def test_certificates_come_from_tls_secrets_and_bad_ones_stay_with_their_ingress() -> None:
    cert, key = _cert("a.test")
    _, other_key = _cert("x.test")
    secrets = {"good": _secret("good", cert, key), "mismatch": _secret("mismatch", cert, other_key)}
    good = _ing(
        "good",
        _rule("a.test", ("/", "Prefix", "a")),
        tls=(IngressTLS(("a.test",), "good"),),
    )
    bad = _ing(
        "bad",
        _rule("b.test", ("/", "Prefix", "a")),
        tls=(IngressTLS(("b.test",), "mismatch"), IngressTLS(("c.test",), "absent")),
        created=2.0,
    )

    plan = _plan([good, bad], SERVICES, secrets)

    assert plan.frontend is not None
    assert [(c.file, c.hosts) for c in plan.frontend.certs] == [("good.pem", ("a.test",))]
    assert plan.pems["good.pem"] == cert + key
    assert [p.reason for p in plan.problems["bad"]] == ["InvalidCertificate", "SecretNotFound"]
    assert all("BEGIN" not in p.message for p in plan.problems["bad"])
    assert plan.served == {"good": (8880, 8443), "bad": (8880,)}
    # The default certificate first: clients naming an unknown host never see good.pem.
    assert render_cert_list(plan.frontend) == "certs/_default.pem\ncerts/good.pem a.test\n"


def test_a_certificate_secret_is_checked_before_haproxy_sees_it() -> None:
    cert, key = _cert("a.test")
    encrypted = serialization.load_pem_private_key(key, None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )

    with pytest.raises(CertificateError, match="encrypted"):
        certificate_pem(_secret("s", cert, encrypted))
    with pytest.raises(CertificateError, match=r'"tls\.crt" is not a PEM certificate'):
        certificate_pem(_secret("s", b"junk", key))
    with pytest.raises(CertificateError, match=r'has no key "tls\.key"'):
        certificate_pem(Secret(ObjectMeta(name="s"), data={"tls.crt": "eA=="}))


def test_rendered_frontends_route_by_host_then_path_elements() -> None:
    cert, key = _cert("a.test")
    ing = _ing(
        "web",
        _rule("*.example.com", ("/", "Prefix", "b")),
        _rule("a.test", ("/api", "Prefix", "a"), ("/exact", "Exact", "b")),
        _rule("", ("/", "Prefix", "c")),
        tls=(IngressTLS(("a.test",), "tls"),),
    )
    plan = _plan([ing], SERVICES, {"tls": _secret("tls", cert, key)})
    state = plan_runtime(LbState(), list(plan.backends), ingress=plan.frontend).state

    config = render_state(state, LbSettings(listen_address="127.0.0.1"), "unix@runtime.sock")

    http = config.split("frontend ingress:http\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert http == [
        "    bind 127.0.0.1:8880",
        "    mode http",
        "    option forwardfor",
        "    http-request set-header X-Forwarded-Proto http",
        "    http-request set-header X-Forwarded-Port 8880",
        # a.test has its certificate served: plain HTTP is sent to HTTPS first.
        "    http-request redirect location https://%[req.hdr(host),host_only]:8443%[pathq] "
        "code 308 if { req.hdr(host),host_only,lower -m str a.test }",
        "    acl host0 req.hdr(host),host_only,lower -m str a.test",
        "    acl host1 req.hdr(host),host_only,lower -m reg ^[^.]+\\.example\\.com$",
        "    use_backend be_b.ingress:80 if host0 { path -m str /exact }",
        "    use_backend be_a.ingress:80 if host0 { path -m str /api } || "
        "host0 { path -m beg /api/ }",
        "    use_backend ingress:404 if host0",
        "    use_backend be_b.ingress:80 if host1",
        "    use_backend ingress:404 if host1",
        "    use_backend be_c.ingress:80 if TRUE",
        "    default_backend ingress:404",
    ]
    assert "bind 127.0.0.1:8443 ssl crt-list certs.list alpn h2,http/1.1" in config
    assert "X-Forwarded-Proto https" in config
    # No redirect on the HTTPS frontend itself.
    assert config.count("http-request redirect") == 1
    # Ingress backends have no frontend of their own.
    assert "frontend fe_a" not in config and "backend be_a.ingress:80\n    mode http" in config


def test_endpoint_changes_need_no_reload_but_route_changes_do() -> None:
    ing = _ing("web", _rule("a.test", ("/", "Prefix", "a")))
    before = plan_ingress([ing], SERVICES, [], [_pod("a-1", "a", 31001)], {"n1": True}, PORTS)
    first = plan_runtime(LbState(), list(before.backends), ingress=before.frontend)
    scaled = plan_ingress(
        [ing], SERVICES, [], [_pod("a-1", "a", 31001), _pod("a-2", "a", 31002)], {"n1": True},
        PORTS,
    )  # fmt: skip
    rerouted = plan_ingress(
        [_ing("web", _rule("b.test", ("/", "Prefix", "a")))], SERVICES, [],
        [_pod("a-1", "a", 31001)], {"n1": True}, PORTS,
    )  # fmt: skip

    runtime = plan_runtime(first.state, list(scaled.backends), ingress=scaled.frontend)
    reload = plan_runtime(first.state, list(rerouted.backends), ingress=rerouted.frontend)

    assert first.needs_reload
    assert not runtime.needs_reload
    assert runtime.commands[0] == "set server be_a.ingress:80/s1 addr 10.0.0.5 port 31002"
    assert reload.needs_reload and reload.reason == "ingress routes or certificates changed"


def test_the_routes_survive_a_master_restart_in_state_json() -> None:
    cert, key = _cert("a.test")
    ing = _ing(
        "web", _rule("a.test", ("/", "Prefix", "a")), default=_to("nope"),
        tls=(IngressTLS((), "tls"),),
    )  # fmt: skip
    plan = _plan([ing], SERVICES, {"tls": _secret("tls", cert, key)})
    state = plan_runtime(LbState(), list(plan.backends), ingress=plan.frontend).state

    data = encode_state(state, "f")

    assert decode_state(data) == (state, "f")
    assert b"PRIVATE" not in data


def test_the_ingress_ports_are_taken_by_age_like_a_service_s() -> None:
    addresses = LbAddresses(listen="127.0.0.1")
    ing = _ing("web", _rule("a.test", ("/", "Prefix", "a")), created=5.0)
    reserved = ingress_reserved(PORTS, [ing])
    older = _svc("older", 8880, created=1.0)
    younger = _svc("younger", 8443, created=9.0)

    _, blocked = plan_services([older, younger], addresses, reserved)

    # An older Service keeps its port: the Ingress HTTP port is lost, on its own; the
    # HTTPS port is the Ingresses' and a younger Service does not get it.
    assert set(blocked) == {INGRESS_HTTP_HOLDER, "younger"}
    assert blocked[INGRESS_HTTP_HOLDER].message == (
        "127.0.0.1:8880, which the Ingress HTTP port listens on, is already used by "
        "service/older (older); delete it or start the master with another --ingress-http-port"
    )
    assert blocked["younger"].message == (
        "spec.ports[0].port: 127.0.0.1:8443 is already used by the Ingress HTTPS port"
    )
    assert admission_errors([_svc("new", 8880)], [], addresses, reserved) == [
        "service/new: spec.ports[0].port: 127.0.0.1:8880 is already used by the Ingress "
        "HTTP port; choose another port"
    ]
    assert [r.listeners for r in reserved] == [
        (Listener("127.0.0.1", 8880),),
        (Listener("127.0.0.1", 8443),),
    ]
    assert ingress_reserved(PORTS, []) == []


def test_status_shows_the_address_and_warns_once_per_change() -> None:
    ing = _ing("web", _rule("a.test", ("/", "Prefix", "a")))
    problem = Problem("BackendNotFound", "spec.rules[0]...: service/x does not exist (503)")

    warned, event = ingress_status(ing, [problem], "127.0.0.1", (8880,))
    again, quiet = ingress_status(warned, [problem], "127.0.0.1", (8880,))
    fixed, cleared = ingress_status(again, [], "127.0.0.1", (8880,))

    assert (warned.address, warned.ports, warned.lb_reason) == (
        "127.0.0.1",
        (8880,),
        problem.reason,
    )
    assert event is not None and (event.type, event.reason) == ("Warning", "BackendNotFound")
    assert quiet is None and again is warned
    assert fixed.lb_reason == "" and cleared is not None and cleared.type == "Normal"


def test_a_lost_http_port_leaves_the_https_one_serving() -> None:
    cert, key = _cert("a.test")
    secure = _ing("secure", _rule("a.test", ("/", "Prefix", "a")), tls=(IngressTLS((), "tls"),))
    plain = _ing("plain", _rule("b.test", ("/", "Prefix", "b")), created=2.0)
    lost = Problem("PortConflict", "127.0.0.1:8880, which the Ingress HTTP port listens on, ...")

    plan = plan_ingress(
        [secure, plain], SERVICES, [_secret("tls", cert, key)], [], {},
        replace(PORTS, http_port=0), [lost],
    )  # fmt: skip

    assert plan.frontend is not None and plan.frontend.http_port == 0
    assert plan.served == {"secure": (8443,)}
    assert plan.problems == {"secure": (lost,), "plain": (lost,)}


def test_ssl_redirect_false_keeps_a_tls_host_on_plain_http_and_hosts_without_tls_stay() -> None:
    cert, key = _cert("a.test")
    secrets = {"tls": _secret("tls", cert, key)}
    tls = (IngressTLS(("a.test", "*.w.test"), "tls"),)
    rules = (_rule("a.test", ("/", "Prefix", "a")), _rule("b.test", ("/", "Prefix", "b")))
    redirected = _ing("web", *rules, tls=tls)
    opted_out = replace(
        redirected,
        meta=replace(
            redirected.meta, annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"}
        ),
    )

    on = _plan([redirected], SERVICES, secrets).frontend
    off = _plan([opted_out], SERVICES, secrets).frontend
    no_https = plan_ingress(
        [redirected], SERVICES, list(secrets.values()), [], {}, replace(PORTS, https_port=0)
    ).frontend

    assert on is not None and on.redirect_hosts == ("*.w.test", "a.test")
    assert off is not None and off.redirect_hosts == ()
    assert no_https is not None and no_https.redirect_hosts == ()


def test_the_ingress_ports_shift_with_the_lb_port_offset_and_off_stays_off() -> None:
    from pathlib import Path

    from master.server import MasterConfig, _ingress_ports

    config = MasterConfig("127.0.0.1:0", Path("unused"), lb_port_offset=10000)

    shifted = _ingress_ports(config)
    http_only = _ingress_ports(replace(config, ingress_https_port=0))

    assert (shifted.http_port, shifted.https_port) == (18880, 18443)
    assert (http_only.http_port, http_only.https_port) == (18880, 0)


def _class(name: str, controller: str, default: bool = False, created: float = 1.0) -> IngressClass:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return IngressClass(
        ObjectMeta(name=name, annotations=annotations, created_at=created), controller
    )


def test_stored_ingress_classes_decide_whose_ingresses_are_served() -> None:
    mine = _ing("mine", _rule("a.test", ("/", "Prefix", "a")), class_name="edge")
    nginx = _ing("theirs", _rule("b.test", ("/", "Prefix", "a")), class_name="nginx")
    unnamed = _ing("unnamed", _rule("c.test", ("/", "Prefix", "a")))
    edge = _class("edge", "pinnace.dev/haproxy")
    nginx_class = _class("nginx", "k8s.io/ingress-nginx", default=True)

    plan = plan_ingress(
        [mine, nginx, unnamed], SERVICES, [], [], {}, PORTS, classes=[edge, nginx_class]
    )
    builtin_default = plan_ingress([unnamed], SERVICES, [], [], {}, PORTS, classes=[edge])

    assert plan.frontend is not None
    assert [h.host for h in plan.frontend.hosts] == ["a.test"]
    assert plan.problems["theirs"][0].message == (
        "IngressClass \"nginx\" is controller k8s.io/ingress-nginx's, not pinnace's "
        "(pinnace.dev/haproxy); this Ingress is left to that controller"
    )
    # No class named: the default class decides, here nginx's.
    assert 'the default one, "nginx", is controller' in plan.problems["unnamed"][0].message
    assert builtin_default.frontend is not None and "unnamed" not in builtin_default.problems


def test_the_built_in_class_is_listed_and_default_only_while_no_stored_one_is() -> None:
    from master.api.render_ingress import render_ingress_classes

    edge = _class("edge", "pinnace.dev/haproxy")
    default = _class("nginx", "k8s.io/ingress-nginx", default=True)

    alone = render_ingress_classes([(edge, {"name": "edge"})], "t")
    beside = render_ingress_classes([(edge, {"name": "edge"}), (default, {"name": "nginx"})], "t")

    assert [d["metadata"]["name"] for d in alone] == ["edge", "pinnace"]
    assert alone[1]["metadata"]["annotations"] == {
        "ingressclass.kubernetes.io/is-default-class": "true"
    }
    assert [d["metadata"]["name"] for d in beside] == ["edge", "nginx", "pinnace"]
    assert beside[2]["metadata"]["annotations"] == {}
    assert beside[1]["spec"] == {"controller": "k8s.io/ingress-nginx"}


def test_an_ingress_class_manifest_is_stored_without_namespace_and_needs_a_controller() -> None:
    from master.manifest import parse_manifests

    doc = (
        b"apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\n"
        b"  annotations: {ingressclass.kubernetes.io/is-default-class: 'true'}\n"
        b"spec: {controller: k8s.io/ingress-nginx}\n"
    )

    (parsed,) = parse_manifests([("class.yaml", doc)]).objects

    assert isinstance(parsed, IngressClass)
    assert (parsed.meta.name, parsed.controller, parsed.is_default) == (
        "nginx",
        "k8s.io/ingress-nginx",
        True,
    )
    with pytest.raises(Exception, match=r"spec\.controller: is required"):
        parse_manifests([("class.yaml", doc.replace(b"{controller: k8s.io/ingress-nginx}", b"{}"))])
