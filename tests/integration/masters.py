"""`pinnace master` processes for the etcd tests: started on port 0, stopped by PID.

Unlike LocalCluster (tests/integration/cluster.py) these need no Docker: the
masters run without a load balancer and the tests look only at the control
plane (objects, leadership, writes).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

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

    def start(self, name: str, *extra: str) -> str:
        data = self.workdir / name
        # Masters of one cluster share the key that seals Secrets (the first one's).
        first = next(iter(self.addresses), None)
        if first is not None and first != name and not (data / "secrets.key").exists():
            data.mkdir(mode=0o700, exist_ok=True)
            shutil.copy2(self.workdir / first / "secrets.key", data / "secrets.key")
        if name in self.procs and self.procs[name].stdout is not None:
            self.procs[name].stdout.close()  # type: ignore[union-attr]
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "master.cli.main", "master",
                "--listen", "127.0.0.1:0", "--data-dir", str(data), "--insecure", "--no-lb",
                "--api-listen", "127.0.0.1:0", "--metrics-listen", "",
                "--store", "etcd", "--etcd-endpoints", self.etcd_endpoints,
                *self.extra, *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.procs[name] = proc
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "listening on" not in line:
            self.kill(name)
            raise AssertionError(f"master {name} did not start: {self.log(name)[-2000:]}")
        self.addresses[name] = line.strip().rsplit(" ", 1)[-1]
        return self.addresses[name]

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, sig)
            proc.wait(timeout=20)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
            if proc.stdout is not None:
                proc.stdout.close()

    def cli(
        self, address: str, *args: str, stdin: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "master.cli.main", "--master", address, "--insecure", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            input=stdin,
            timeout=timeout,
            check=False,
        )
