"""A single master on etcd (no --leader-elect) after a write whose outcome was unknown.

A real etcd, a real master process, the CLI. Between them a relay (etcd_trap.py)
loses etcd's answer to one write, after etcd committed it ("land") or before it
reached etcd ("lose"): the client hears the change may or may not have been saved.
Then the connection is cut, the master connects again, and once it takes writes
again its view must be what etcd holds: a landed scale in it (and its pods made, so
the controllers were told), a lost one not. Before the settler, the landed scale
stayed missing from the master's memory, and the controllers' next write of that
deployment put the old replica count back into etcd.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from master.model import Deployment
from master.store.codec import decode
from master.store.etcd_client import EtcdClient, EtcdSettings
from tests.etcd_cluster import EtcdCluster
from tests.integration.etcd_trap import EtcdTrap, Mode
from tests.integration.masters import DEPLOYMENT, Masters

# The master's etcd calls give up after this: the trapped write's answer comes in time.
ETCD_TIMEOUT = "2s"
# Resuming: the trapped connection's calls time out, the next connects and settles.
RESUME_S = 60.0


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


@pytest.fixture
def prefix() -> str:
    return f"/t-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def masters(tmp_path: Path, trap: EtcdTrap, prefix: str) -> Iterator[Masters]:
    m = Masters(tmp_path, trap.url, ("--etcd-prefix", prefix, "--etcd-timeout", ETCD_TIMEOUT))
    try:
        yield m
    finally:
        m.stop_all()


def _wait(what: str, check: Callable[[], bool], timeout: float = RESUME_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(0.1)


def _in_etcd(etcd: EtcdCluster, prefix: str) -> Deployment:
    """The deployment as etcd holds it, read past the relay."""
    client = EtcdClient(EtcdSettings((etcd.members[0].client_url,)))
    try:
        [kv] = client.range(f"{prefix}o/Deployment/default/web".encode()).kvs
    finally:
        client.close()
    stored = decode("Deployment", bytes(kv.value))
    assert isinstance(stored, Deployment)
    return stored


def _annotated(replicas: int, marker: str) -> str:
    return DEPLOYMENT.format(name="web", replicas=replicas).replace(
        "  name: web\n", f"  name: web\n  annotations: {{trap: {marker}}}\n", 1
    )


def _view(masters: Masters, address: str) -> tuple[int, str, int]:
    """The master's view: the deployment's replicas and trap annotation, and its pods."""
    got = masters.cli(address, "get", "deployment", "web", "-o", "json")
    assert got.returncode == 0, got.stderr
    deployment = json.loads(got.stdout)
    pods = json.loads(masters.cli(address, "get", "pods", "-o", "json").stdout)["items"]
    return (
        deployment["spec"]["replicas"],
        deployment["metadata"].get("annotations", {}).get("trap", ""),
        len(pods),
    )


def _takes_writes(masters: Masters, address: str) -> Callable[[], bool]:
    probes = iter(range(1_000_000))

    def check() -> bool:
        name = f"probe-{next(probes)}"
        made = masters.cli(address, "create", "namespace", name)
        return made.returncode == 0

    return check


@pytest.mark.parametrize("mode", ["land", "lose"])
def test_after_a_write_in_doubt_the_single_master_serves_what_etcd_holds(
    mode: Mode, masters: Masters, trap: EtcdTrap, etcd: EtcdCluster, prefix: str
) -> None:
    address = masters.start("solo")
    applied = masters.cli(
        address, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="web", replicas=1)
    )
    assert applied.returncode == 0, applied.stderr
    _wait("the deployment's pod made", lambda: _view(masters, address)[2] == 1)

    marker = f"{mode}-{uuid.uuid4().hex[:8]}"
    trap.arm(marker, mode)
    scaled = masters.cli(address, "apply", "-f", "-", stdin=_annotated(3, marker))

    assert trap.sprung.is_set(), "the scale's transaction never passed the relay"
    assert scaled.returncode == 1
    assert "may or may not have been saved" in scaled.stderr, scaled.stderr
    landed = _in_etcd(etcd, prefix)
    if mode == "land":
        assert (landed.replicas, landed.meta.annotations.get("trap")) == (3, marker)
    else:
        assert (landed.replicas, landed.meta.annotations.get("trap")) == (1, None)

    trap.cut()
    _wait("the master takes writes again", _takes_writes(masters, address))

    stored = _in_etcd(etcd, prefix)
    want = (stored.replicas, stored.meta.annotations.get("trap", ""))
    assert want == ((3, marker) if mode == "land" else (1, ""))
    assert _view(masters, address)[:2] == want
    # The controllers were told: a landed scale made its pods, a lost one none.
    _wait(f"{want[0]} pods", lambda: _view(masters, address)[2] == want[0])
