"""Real etcd members for tests: `EtcdCluster.start(tmp, members=3)`, stopped by PID.

Debian's `etcd-server` (3.4) provides the `etcd` binary; `.ci/run` installs it.
Each member listens on 127.0.0.1 only. etcd cannot take port 0, so free ports
are picked by binding port 0 and releasing it; if etcd then finds one taken (a
race with another process) the whole cluster is started again on new ports.
Members keep their data in a temporary directory that `stop()` removes.

Under CI a missing etcd is a failure, not a skip (`require_etcd`, tests/support.py's rule).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port, unavailable

ETCD = "etcd"
# Batches of the master's flusher can be large; etcd's defaults (128 ops,
# 1.5 MiB) are too small for one transaction per batch.
MAX_TXN_OPS = 10000
MAX_REQUEST_BYTES = 16 * 1024 * 1024


def require_etcd() -> str:
    """The etcd binary, or skip (fail under CI) when it is not installed."""
    path = shutil.which(ETCD)
    if path is None:
        unavailable("etcd is not installed (apt-get install etcd-server)")
    return path


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=1) as r:
                return b'"true"' in r.read()
        except OSError:
            return False


@dataclass
class EtcdCluster:
    binary: str
    workdir: Path
    members: list[Member] = field(default_factory=list)

    @classmethod
    def start(cls, members: int = 1, attempts: int = 3) -> EtcdCluster:
        binary = require_etcd()
        for attempt in range(attempts):
            cluster = cls(binary, Path(tempfile.mkdtemp(prefix="pinnace-etcd-")))
            try:
                cluster._launch(members)
                cluster.wait_healthy(timeout=30)
                return cluster
            except Exception:
                logs = cluster.logs()
                cluster.stop()
                if "address already in use" in logs and attempt + 1 < attempts:
                    continue
                raise
        raise AssertionError("unreachable")

    @property
    def endpoints(self) -> str:
        return ",".join(m.client_url for m in self.members)

    def _launch(self, count: int) -> None:
        for i in range(count):
            name = f"m{i}"
            self.members.append(
                Member(
                    name,
                    free_port(),
                    free_port(),
                    self.workdir / name,
                    self.workdir / f"{name}.log",
                )
            )
        for member in self.members:
            self.start_member(member)

    def start_member(self, member: Member) -> None:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        state = "existing" if member.data_dir.exists() else "new"
        cmd = [
            self.binary,
            "--name", member.name,
            "--data-dir", str(member.data_dir),
            "--listen-client-urls", member.client_url,
            "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-state", state,
            "--initial-cluster-token", self.workdir.name,
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
            "--max-txn-ops", str(MAX_TXN_OPS),
            "--max-request-bytes", str(MAX_REQUEST_BYTES),
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip
        with member.log.open("ab") as log:
            member.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_healthy(self, timeout: float, members: list[Member] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = list(members if members is not None else self.members)
        while pending:
            for m in list(pending):
                if m.process is not None and m.process.poll() is not None:
                    raise RuntimeError(f"etcd {m.name} exited: {self.logs()[-2000:]}")
                if m.healthy():
                    pending.remove(m)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"etcd not healthy in {timeout}s: {self.logs()[-2000:]}")
            if pending:
                time.sleep(0.05)

    def kill(self, member: Member, sig: int = signal.SIGKILL) -> None:
        """Stop one member by its PID (SIGKILL by default) and reap it."""
        if member.process is not None and member.process.poll() is None:
            os.kill(member.process.pid, sig)
            member.process.wait(timeout=30)

    def leader(self) -> Member:
        """The member etcd's Raft has elected (its /metrics say etcd_server_is_leader 1)."""
        for member in self.members:
            try:
                with urllib.request.urlopen(f"{member.client_url}/metrics", timeout=2) as r:
                    if b"\netcd_server_is_leader 1\n" in r.read():
                        return member
            except OSError:
                continue
        raise RuntimeError("no etcd member says it is the leader")

    def logs(self) -> str:
        return "".join(m.log.read_text(errors="replace") for m in self.members if m.log.exists())

    def stop(self) -> None:
        # SIGKILL: the data is thrown away, and a graceful stop of a member whose
        # peers are gone waits seconds for a leadership transfer that cannot happen.
        for member in self.members:
            self.kill(member)
        shutil.rmtree(self.workdir, ignore_errors=True)
