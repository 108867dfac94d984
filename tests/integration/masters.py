"""`pinnace master` processes for the etcd tests: started on port 0, stopped by PID.

Unlike LocalCluster (tests/integration/cluster.py) these need no Docker: by
default the masters run without a load balancer and the tests look only at the
control plane (objects, leadership, writes); `lb_port_offset` gives each master
its HAProxy on a loopback address of its own. They run as users run them: TLS, one
cluster secret file for all (so they share the CA, the admin credentials and
the Secrets key through etcd); the CLI and `channel()` use the admin's
pinnace.conf, which every master of the cluster writes alike.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from master.lb.process import stop_running
from master.pki.clientconfig import read_client_config
from tests.integration.cluster import NO_INGRESS
from tests.support import env_with_haproxy

REPO = Path(__file__).resolve().parents[2]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
"""


@dataclass
class Masters:
    """Masters on one etcd, each with its own data dir under `workdir`."""

    workdir: Path
    etcd_endpoints: str
    extra: tuple[str, ...] = ()
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)
    api_urls: dict[str, str] = field(default_factory=dict)
    # With a load balancer: HAProxy at service port + this offset, each master's on its
    # own loopback address (127.0.0.2, .3, ... in the order the masters first start).
    lb_port_offset: int | None = None
    lb_hosts: dict[str, str] = field(default_factory=dict)
    # Run the masters from another tree (a bench's before/after in one run); None: this one.
    source: Path | None = None

    @property
    def secret_file(self) -> Path:
        path = self.workdir / "cluster-secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32) + "\n")
            path.chmod(0o600)
        return path

    @property
    def config(self) -> Path:
        """The admin's pinnace.conf (the first master's; every master writes the same)."""
        return self.workdir / next(iter(self.addresses)) / "pinnace.conf"

    def channel(self, address: str) -> grpc.Channel:
        """An admin channel to one master, as the CLI makes it."""
        creds = read_client_config(self.config)
        tls = grpc.ssl_channel_credentials(creds.ca_pem, creds.key_pem, creds.cert_pem)
        return grpc.secure_channel(address, tls)

    def start(self, name: str, *extra: str) -> str:
        self.spawn(name, *extra)
        return self.ready(name)

    def start_many(self, names: Sequence[str], *extra: str) -> None:
        """Start several masters at once (each with `--name NAME` and `extra`): they come
        up in parallel, the first to store the cluster identity making it for all."""
        for name in names:
            self.spawn(name, "--name", name, *extra)
        for name in names:
            self.ready(name)

    def spawn(self, name: str, *extra: str) -> None:
        data = self.workdir / name
        if name in self.procs and self.procs[name].stdout is not None:
            self.procs[name].stdout.close()  # type: ignore[union-attr]
        log = (self.workdir / f"{name}.log").open("ab")
        lb = ["--no-lb"]
        if self.lb_port_offset is not None:
            host = self.lb_hosts.setdefault(name, f"127.0.0.{len(self.lb_hosts) + 2}")
            lb = ["--lb-listen", host, "--lb-port-offset", str(self.lb_port_offset)]
            # No Ingress ports: shifted by the offset they could pass 65535.
            lb += ["--stop-lb-on-exit", *NO_INGRESS]
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "master.cli.main", "master",
                "--listen", "127.0.0.1:0", "--data-dir", str(data), *lb,
                "--cluster-secret-file", str(self.secret_file),
                "--api-listen", "127.0.0.1:0", "--metrics-listen", "",
                "--store", "etcd", "--etcd-endpoints", self.etcd_endpoints,
                *self.extra, *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=self.source or REPO,
            env=env_with_haproxy({**os.environ, "PYTHONUNBUFFERED": "1"}),
        )  # fmt: skip
        self.procs[name] = proc

    def ready(self, name: str) -> str:
        """Wait for a spawned master's first lines: its address and its API's URL."""
        proc = self.procs[name]
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "listening on" not in line:
            self.kill(name)
            raise AssertionError(f"master {name} did not start: {self.log(name)[-2000:]}")
        self.addresses[name] = line.strip().rsplit(" ", 1)[-1]
        api = proc.stdout.readline().decode()
        if "Kubernetes API on" in api:
            self.api_urls[name] = api.strip().rsplit(" ", 1)[-1]
        return self.addresses[name]

    def kube(self, name: str, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """One request to a master's Kubernetes API as the admin: (status, decoded JSON, or
        the text of a text/plain answer such as a pod's log)."""
        creds = read_client_config(self.config)
        context = ssl.create_default_context(cadata=creds.ca_pem.decode())
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "c"), Path(tmp, "k")
            cert.write_bytes(creds.cert_pem)
            key.write_bytes(creds.key_pem)
            context.load_cert_chain(cert, key)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api_urls[name] + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=15) as reply:
                return reply.status, _decoded(reply.read(), reply.headers["Content-Type"])
        except urllib.error.HTTPError as e:
            return e.code, _decoded(e.read(), e.headers["Content-Type"])

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, sig)
            proc.wait(timeout=60)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
            if proc.stdout is not None:
                proc.stdout.close()
        for name in self.lb_hosts:
            # A master killed with -9 leaves its HAProxy serving (by design): stop it by
            # the pid in its data dir.
            stop_running(self.workdir / name / "lb")

    def cli(
        self,
        address: str,
        *args: str,
        stdin: str | None = None,
        timeout: float = 60,
        config: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The CLI as the admin; `address` "" leaves the masters to the config's `server`."""
        master = ("--master", address) if address else ()
        return subprocess.run(
            [
                *(sys.executable, "-m", "master.cli.main", *master),
                *("--config", str(config or self.config), *args),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            input=stdin,
            timeout=timeout,
            check=False,
        )


def _decoded(body: bytes, content_type: str | None) -> Any:
    if (content_type or "").startswith("text/plain"):
        return body.decode(errors="replace")
    return json.loads(body)
