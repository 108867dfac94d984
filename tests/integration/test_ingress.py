"""Issue 17 point 5 on real Docker and a real HAProxy: Ingresses routing by host and path.

One cluster: two web apps (pinnace/httpd pods saying "alpha" or "beta", with a CGI
script that prints the forwarding headers it received), a Service each, a TLS Secret
made here with `cryptography`, an Ingress routing two hosts, a path, a wildcard and a
default backend, and beside it an Ingress naming a Service and a Secret that do not
exist. The ingress ports are shifted by --lb-port-offset; a host with TLS is redirected
from HTTP to HTTPS unless its Ingress says ssl-redirect "false"; an unknown SNI gets the
default certificate. Traffic goes only to 127.0.0.1, with the host in the Host header
or SNI.
"""

from __future__ import annotations

import datetime
import http.client
import json
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.kube_helpers import Kubectl, wheel_kubectl, write_kubeconfig
from tests.support import require_haproxy

pytestmark = pytest.mark.integration

CGI = (
    "#!/bin/sh\necho Content-Type: text/plain\necho\n"
    'echo "app=$MESSAGE xff=$HTTP_X_FORWARDED_FOR proto=$HTTP_X_FORWARDED_PROTO"\n'
)


@pytest.fixture(autouse=True)
def _need_haproxy() -> None:
    require_haproxy()


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [int(s.getsockname()[1]) for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _free_offset(service_ports: tuple[int, ...]) -> int:
    """An offset that puts every service port on a free port of 127.0.0.1."""
    for base in _free_ports(20):
        offset = base - service_ports[0]
        try:
            for port in service_ports[1:]:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + offset))
        except (OSError, OverflowError):
            continue
        return offset
    raise AssertionError("no free port offset found")


def _self_signed(*hosts: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _app(name: str, port: int) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          env: [{{name: MESSAGE, value: {name}}}]
          ports: [{{containerPort: 80}}]
          volumeMounts: [{{name: cgi, mountPath: /www/cgi-bin}}]
      volumes:
        - name: cgi
          configMap: {{name: cgi, defaultMode: 0755}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: {port}, targetPort: 80}}]
"""


def _to(service: str, port: str) -> str:
    """An Ingress backend as a YAML flow map; `port` is "number: N" or "name: X"."""
    return f"{{service: {{name: {service}, port: {{{port}}}}}}}"


def _manifests(cert: str, key: str) -> str:
    indent = "\n    "
    alpha, alpha_by_name = _to("alpha", "number: 80"), _to("alpha", "name: http")
    beta, missing = _to("beta", "number: 81"), _to("no-such-app", "number: 80")
    return f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: cgi}}
data:
  h: {json.dumps(CGI)}
  hh: {json.dumps(CGI)}
---
{_app("alpha", 80)}---
{_app("beta", 81)}---
apiVersion: v1
kind: Secret
metadata: {{name: web-tls}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
    {indent.join(cert.strip().splitlines())}
  tls.key: |
    {indent.join(key.strip().splitlines())}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  defaultBackend: {alpha}
  tls: [{{hosts: [a.test], secretName: web-tls}}]
  rules:
    - host: a.test
      http:
        paths: [{{path: /, pathType: Prefix, backend: {alpha}}}]
    - host: b.test
      http:
        paths:
          - {{path: /cgi-bin/h, pathType: Prefix, backend: {alpha_by_name}}}
          - {{path: /, pathType: Prefix, backend: {beta}}}
    - host: "*.wild.test"
      http:
        paths: [{{path: /, pathType: Prefix, backend: {beta}}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: broken}}
spec:
  tls: [{{hosts: [c.test], secretName: no-such-secret}}]
  rules:
    - host: c.test
      http:
        paths: [{{path: /, pathType: Prefix, backend: {missing}}}]
"""


def _http(port: int, host: str, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def _redirect(port: int, host: str, path: str) -> tuple[int, str]:
    """The status and Location of a plain-HTTP GET (a redirect is not followed)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Location") or ""
    finally:
        conn.close()


def _certificate_name(port: int, sni: str | None) -> str:
    """The common name of the certificate HAProxy shows a client sending `sni` (or none)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    name = x509.load_der_x509_certificate(der).subject
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _https(port: int, host: str, cafile: Path, path: str = "/") -> tuple[int, str]:
    """GET over TLS to 127.0.0.1 with `host` as SNI and Host, verifying the certificate."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


def _says(port: int, host: str, path: str = "/") -> str:
    """Which app answered (alpha, beta), else the status; "refused" before HAProxy listens."""
    try:
        status, body = _http(port, host, path)
    except ConnectionRefusedError:
        return "refused"
    for name in ("alpha", "beta"):
        if f'"message">{name}<' in body or body.startswith(f"app={name} "):
            return name
    return f"{status} {body[:80]!r}"


def test_an_ingress_routes_hosts_paths_and_tls_beside_a_broken_one(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    # The ingress ports are shifted by --lb-port-offset like the Services' ports (8880 and
    # 8443 by default); 9443 + offset is kept free for the refused-port step at the end.
    offset = _free_offset((80, 81, 8880, 8443, 9443))
    http_port, https_port = 8880 + offset, 8443 + offset
    # Held from now on (bound, not listening): free when chosen, 9443 + offset was taken by
    # the time of that step in a CI run (an ephemeral port of some connection meanwhile).
    holder = socket.socket()
    holder.bind(("127.0.0.1", 9443 + offset))
    flags: tuple[str, ...] = ("--lb-port-offset", str(offset), "--ingress-http-port", "8880")
    cluster.start_master(*flags)
    cluster.start_agent("n1")
    cert, key = _self_signed("a.test")
    cafile = tmp_path / "ca.pem"
    cafile.write_text(cert)
    manifests = tmp_path / "web.yaml"
    manifests.write_text(_manifests(cert, key))
    cluster.cli("apply", "-f", str(manifests))

    wait_for("b.test to reach beta", lambda: _says(http_port, "b.test") == "beta", timeout=60)
    wait_for("alpha's CGI", lambda: _says(http_port, "b.test", "/cgi-bin/h") == "alpha")
    # a.test has TLS: plain HTTP is redirected to HTTPS (308), path and query kept.
    # (Waited for: the apply's objects are stored one by one, and a pass of the load
    # balancer may see the Ingress before its Secret.)
    wanted = (308, f"https://a.test:{https_port}/x/y?z=1")
    wait_for("a.test's redirect", lambda: _redirect(http_port, "a.test", "/x/y?z=1") == wanted)

    # Hosts, a path (by whole elements), a wildcard of exactly one label, the default.
    assert _says(http_port, "B.TEST:80", "/cgi-bin/h") == "alpha"
    assert _says(http_port, "b.test", "/cgi-bin/h?q=/cgi-bin/hh") == "alpha"
    assert _says(http_port, "b.test", "/cgi-bin/hh") == "beta"
    assert _says(http_port, "x.wild.test") == "beta"
    assert _says(http_port, "x.y.wild.test") == "alpha"  # no rule: the default backend
    assert _says(http_port, "unknown.test") == "alpha"

    # The client's address and scheme reach the pod.
    status, body = _http(http_port, "b.test", "/cgi-bin/h")
    assert (status, body.strip()) == (200, "app=alpha xff=127.0.0.1 proto=http")
    # TLS with SNI, verified against the Secret's certificate.
    status, body = _https(https_port, "a.test", cafile)
    assert status == 200 and '"message">alpha<' in body
    status, body = _https(https_port, "a.test", cafile, "/cgi-bin/h")
    assert body.strip() == "app=alpha xff=127.0.0.1 proto=https"
    # A client naming a host no certificate is for (or none) gets the default certificate,
    # not a tenant's.
    assert _certificate_name(https_port, "nobody.test") == "ingress.pinnace.invalid"
    assert _certificate_name(https_port, None) == "ingress.pinnace.invalid"

    # The broken Ingress: its route answers 503, it carries Warning events naming what is
    # missing, and it stopped nothing else.
    assert _http(http_port, "c.test")[0] == 503

    def warnings() -> set[str] | None:
        events = cluster.get_json("events")["items"]
        found = {
            e["reason"]
            for e in events
            if e["involvedObject"]["name"] == "broken" and e["type"] == "Warning"
        }
        return found if found else None

    reasons = wait_for("the broken Ingress's warning", warnings, timeout=60)
    assert reasons == {"BackendNotFound"}
    message = next(
        e["message"]
        for e in cluster.get_json("events")["items"]
        if e["involvedObject"]["name"] == "broken"
    )
    assert "service/no-such-app does not exist" in message
    assert "secret/no-such-secret does not exist" in message

    described = cluster.cli("describe", "ingress", "broken").stdout
    assert 'no-such-app:80 (<error: services "no-such-app" not found>)' in described
    assert "BackendNotFound" in described

    web = cluster.get_json("ingress", "web")
    assert web["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1"
    table = cluster.cli("get", "ingress").stdout.splitlines()
    assert table[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    row = next(line for line in table if line.startswith("web "))
    assert "a.test,b.test,*.wild.test" in row
    assert f"{http_port}, {https_port}" in row

    # The certificate file HAProxy reads is the owner's alone; no key reached a log.
    pem = cluster.workdir / "master-data" / "lb" / "certs" / "web-tls.pem"
    assert pem.stat().st_mode & 0o077 == 0
    key_line = key.strip().splitlines()[1]
    for log in cluster.workdir.glob("*.log"):
        assert key_line not in log.read_text(errors="replace")

    # kubectl: apply (twice: create, then a patch), get, and the default IngressClass.
    kubectl = Kubectl(wheel_kubectl(), write_kubeconfig(cluster), cluster.workdir)
    extra, beta = tmp_path / "kube.yaml", _to("beta", "name: http")
    for path in ("/", "/index.html"):
        extra.write_text(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: kube\n"
            "  annotations: {nginx.ingress.kubernetes.io/ssl-redirect: 'false'}\n"
            "spec:\n  ingressClassName: pinnace\n"
            "  tls: [{hosts: [k.test], secretName: web-tls}]\n"
            "  rules:\n  - host: k.test\n    http:\n"
            f"      paths: [{{path: {path}, pathType: Exact, backend: {beta}}}]\n"
        )
        kubectl.run("apply", "-f", str(extra))
    # k.test has TLS too, but ssl-redirect "false" keeps it on plain HTTP.
    wait_for("k.test to reach beta", lambda: _says(http_port, "k.test", "/index.html") == "beta")
    listed = kubectl.run("get", "ingress").stdout
    assert "kube" in listed and "broken" in listed and "127.0.0.1" in listed
    assert "pinnace.dev/haproxy" in kubectl.run("get", "ingressclass").stdout
    described = kubectl.run("describe", "ingress", "broken").stdout
    assert "c.test" in described and "BackendNotFound" in described, described
    assert cluster.cli("get", "ingressclass").stdout.split()[4:6] == [
        "pinnace",
        "pinnace.dev/haproxy",
    ]
    # A stored IngressClass of another controller, made the default: an Ingress of that
    # class, or naming none, is left alone with the reason; the built-in class is listed
    # beside it, no longer the default.
    other = tmp_path / "nginx.yaml"
    other.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\n"
        "  annotations: {ingressclass.kubernetes.io/is-default-class: 'true'}\n"
        "spec: {controller: k8s.io/ingress-nginx}\n---\n"
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: theirs}\n"
        "spec:\n  ingressClassName: nginx\n  rules:\n  - host: n.test\n    http:\n"
        f"      paths: [{{path: /, pathType: Prefix, backend: {beta}}}]\n"
    )
    cluster.cli("apply", "-f", str(other))

    def ignored() -> str | None:
        return next(
            (
                str(e["message"])
                for e in cluster.get_json("events")["items"]
                if e["involvedObject"]["name"] == "theirs" and e["reason"] == "IgnoredIngressClass"
            ),
            None,
        )

    message = wait_for("the nginx-class Ingress to be ignored with its reason", ignored)
    assert 'IngressClass "nginx" is controller k8s.io/ingress-nginx\'s' in message
    # The default class is nginx's now: `web`, naming no class, is left to it too.
    wait_for("web's routes to go", lambda: _says(http_port, "b.test").startswith("404"))
    web_status = cluster.get_json("ingress", "web")["status"]
    assert web_status["loadBalancer"] in ({}, {"ingress": []}), web_status
    assert _says(http_port, "n.test").startswith("404")
    classes = kubectl.run("get", "ingressclass", "-o", "json").stdout
    by_name = {i["metadata"]["name"]: i for i in json.loads(classes)["items"]}
    assert sorted(by_name) == ["nginx", "pinnace"]
    assert by_name["pinnace"]["metadata"]["annotations"] == {}
    # The Ingress naming pinnace's class is still served; without the nginx class, web again.
    assert _says(http_port, "k.test", "/index.html") == "beta"
    cluster.cli("delete", "ingressclass", "nginx")
    wait_for("web's routes back", lambda: _says(http_port, "b.test") == "beta")
    # ... and saved for the next master (the kill below must not fall between the reload
    # and the save, or the next master reloads instead of adopting as it is).
    saved = cluster.workdir / "master-data" / "lb" / "state.json"
    wait_for("the routes saved", lambda: "b.test" in saved.read_text())

    # HAProxy outlives the master: the routes and certificates keep serving while it is
    # down, and the next master adopts them as they are (no reload).
    cluster.kill_master()
    assert _says(http_port, "b.test") == "beta"
    assert '"message">alpha<' in _https(https_port, "a.test", cafile)[1]
    log = cluster.workdir / "master.log"
    offset_in_log = log.stat().st_size
    cluster.start_master(*flags)

    def adopted() -> str | None:
        text = log.read_text(errors="replace")[offset_in_log:]
        return text if "lb apply: " in text else None

    text = wait_for("the new master to program the adopted HAProxy", adopted, timeout=30)
    assert "load balancer (HAProxy) adopted" in text
    assert "lb apply: nothing changed" in text, text[-2000:]
    assert _says(http_port, "k.test", "/index.html") == "beta"

    # HAProxy cannot bind the HTTPS port (another process holds it): the Ingresses say so
    # in a Warning, and the Services are still programmed.
    with holder:
        holder.listen()
        cluster.kill_master()
        cluster.start_master(*flags, "--ingress-https-port", "9443")

        def refused() -> bool:
            events = cluster.get_json("events")["items"]
            return any(
                e["reason"] == "LoadBalancerFailed" and e["involvedObject"]["name"] == "web"
                for e in events
            )

        wait_for("the Ingresses to report HAProxy's refusal", refused, timeout=30)
        assert _says(80 + offset, "any") == "alpha"
