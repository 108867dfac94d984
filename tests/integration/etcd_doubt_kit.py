"""What the tests of etcd masters' writes in doubt share: one etcd member, the relay of
etcd_trap.py in front of it, a read of a stored object past the relay, a check that the master
takes writes again, and for the resend tests an agent joined to the masters and the pods as a
master shows them.

Fixtures are imported by name into the test modules (`from ... import etcd, trap`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from master.model import StoredObject
from master.store.codec import decode
from master.store.etcd_client import EtcdClient, EtcdSettings
from tests.etcd_cluster import EtcdCluster
from tests.integration.cluster import wait_for
from tests.integration.etcd_trap import EtcdTrap
from tests.integration.masters import REPO, Masters
from tests.support import remove_container


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(members=1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def trap(etcd: EtcdCluster) -> Iterator[EtcdTrap]:
    relay = EtcdTrap(etcd.members[0].client_port)
    try:
        yield relay
    finally:
        relay.close()


def stored(etcd: EtcdCluster, kind: str, key: str) -> StoredObject:
    """The object etcd holds under `key` (the prefix's "o/Kind/ns/name"), read past the relay."""
    client = EtcdClient(EtcdSettings((etcd.members[0].client_url,)))
    try:
        [kv] = client.range(key.encode()).kvs
    finally:
        client.close()
    return decode(kind, bytes(kv.value))


def takes_writes(masters: Masters, address: str) -> Callable[[], bool]:
    """A check that the master stores a new object (a namespace of a fresh name each call)."""
    probes = iter(range(1_000_000))

    def check() -> bool:
        made = masters.cli(address, "create", "namespace", f"probe-{next(probes)}")
        return made.returncode == 0

    return check


def pods(masters: Masters, address: str) -> list[dict[str, Any]]:
    """The pods as the master at `address` shows them (`get pods -o json`)."""
    got = masters.cli(address, "get", "pods", "-o", "json")
    assert got.returncode == 0, got.stderr
    items: list[dict[str, Any]] = json.loads(got.stdout)["items"]
    return items


def restarts(pod: dict[str, Any]) -> tuple[str, bool, int]:
    """(phase, ready, restart count) of a one-container pod as a master shows it."""
    [container] = pod["status"].get("containerStatuses") or [{}]
    return (
        pod["status"].get("phase", ""),
        bool(container.get("ready")),
        int(container.get("restartCount", 0)),
    )


@contextlib.contextmanager
def joined_agent(
    masters: Masters,
    token_from: str,
    master_arg: str,
    node: str,
    workdir: Path,
    docker_client: docker.DockerClient,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real agent for `node` with `--master master_arg`, joined with a token made at
    `token_from`, logging to workdir/agent.log; on the way out it is stopped by its PID and
    its containers removed."""
    made = masters.cli(token_from, "token", "create", "--ttl", "1h")
    assert made.returncode == 0, made.stderr
    log = (workdir / "agent.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "agent", "--master", master_arg, "--name", node,
            "--advertise-address", "127.0.0.1", "--token", made.stdout.strip(),
            "--metrics-listen", "", "--no-node-proxy", "--cluster-dns=none",
            "--state-dir", str(workdir / "agent-state"),
        ],
        stdout=log, stderr=log, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
        log.close()
        for c in docker_client.containers.list(all=True, filters={"label": f"pinnace.node={node}"}):
            remove_container(c.client, str(c.id))


# A ConfigMap whose write the relay is armed to lose (its marker is the trap's match).
TRAPPED_CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: trapped}}
data: {{marker: {marker}}}
"""


def trapped_write(
    masters: Masters, address: str, trap: EtcdTrap, workdir: Path
) -> subprocess.Popen[str]:
    """`pinnace apply` of a ConfigMap whose request the relay loses (it holds the master's
    etcd connection from then on); returns the CLI's process once the relay has it."""
    marker = f"trapped-{uuid.uuid4().hex[:8]}"
    manifest = workdir / f"{marker}.yaml"
    manifest.write_text(TRAPPED_CONFIG_MAP.format(marker=marker))
    trap.arm(marker, "lose")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "master.cli.main", "--master", address,
            "--config", str(masters.config), "apply", "-f", str(manifest),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, text=True,
    )  # fmt: skip
    try:
        wait_for("the trapped write to reach the relay", trap.sprung.is_set, 30)
    except BaseException:
        end(proc)
        raise
    return proc


def end(proc: subprocess.Popen[str]) -> None:
    """Stops the CLI's process if it still runs (by its PID, through Popen)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
