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
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from master.model import Deployment
from tests.etcd_cluster import EtcdCluster
from tests.integration import etcd_doubt_kit
from tests.integration.cluster import wait_for
from tests.integration.etcd_doubt_kit import stored, takes_writes
from tests.integration.etcd_trap import EtcdTrap, Mode
from tests.integration.masters import DEPLOYMENT, Masters

# One etcd member and the relay in front of it (etcd_doubt_kit.py).
etcd = etcd_doubt_kit.etcd
trap = etcd_doubt_kit.trap

# The master's etcd calls give up after this: the trapped write's answer comes in time.
ETCD_TIMEOUT = "2s"
# Resuming: the trapped connection's calls time out, the next connects and settles.
RESUME_S = 60.0


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


def _in_etcd(etcd: EtcdCluster, prefix: str) -> Deployment:
    """The deployment as etcd holds it, read past the relay."""
    found = stored(etcd, "Deployment", f"{prefix}o/Deployment/default/web")
    assert isinstance(found, Deployment)
    return found


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


@pytest.mark.parametrize("mode", ["land", "lose"])
def test_after_a_write_in_doubt_the_single_master_serves_what_etcd_holds(
    mode: Mode, masters: Masters, trap: EtcdTrap, etcd: EtcdCluster, prefix: str
) -> None:
    address = masters.start("solo")
    applied = masters.cli(
        address, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="web", replicas=1)
    )
    assert applied.returncode == 0, applied.stderr
    wait_for("the deployment's pod made", lambda: _view(masters, address)[2] == 1, RESUME_S)

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
    wait_for("the master takes writes again", takes_writes(masters, address), RESUME_S)

    stored = _in_etcd(etcd, prefix)
    want = (stored.replicas, stored.meta.annotations.get("trap", ""))
    assert want == ((3, marker) if mode == "land" else (1, ""))
    assert _view(masters, address)[:2] == want
    # The controllers were told: a landed scale made its pods, a lost one none.
    wait_for(f"{want[0]} pods", lambda: _view(masters, address)[2] == want[0], RESUME_S)
