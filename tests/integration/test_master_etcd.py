"""`pinnace master --store etcd` end to end: real etcd, real master processes, the CLI.

What a user relies on: everything acknowledged is in etcd, so a master killed
with -9 and replaced by another (on another machine: another data dir) serves
the same cluster; flags that do not fit together are refused with one sentence.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.etcd_cluster import EtcdCluster
from tests.integration.masters import DEPLOYMENT, REPO, Masters


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdCluster]:
    cluster = EtcdCluster.start(members=1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def masters(tmp_path: Path, etcd: EtcdCluster) -> Iterator[Masters]:
    m = Masters(tmp_path, etcd.endpoints, ("--etcd-prefix", f"/t-{uuid.uuid4().hex[:8]}/"))
    try:
        yield m
    finally:
        m.stop_all()


def test_a_replacement_master_serves_what_a_killed_one_acknowledged(masters: Masters) -> None:
    first = masters.start("a")
    applied = masters.cli(
        first, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="web", replicas=3)
    )
    assert applied.returncode == 0, applied.stderr
    scaled = masters.cli(first, "scale", "deployment", "web", "--replicas", "4")
    assert scaled.returncode == 0, scaled.stderr
    before = json.loads(masters.cli(first, "get", "pods", "-o", "json").stdout)

    masters.kill("a")
    second = masters.start("b")  # another data dir: nothing local survives

    deployment = json.loads(masters.cli(second, "get", "deployment", "web", "-o", "json").stdout)
    after = json.loads(masters.cli(second, "get", "pods", "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 4
    names = sorted(p["metadata"]["name"] for p in after["items"])
    assert names == sorted(p["metadata"]["name"] for p in before["items"])
    assert len(names) == 4


def test_a_single_master_lists_itself_as_the_leader(masters: Masters) -> None:
    address = masters.start("solo", "--name", "solo")

    listed = masters.cli(address, "get", "masters", "-o", "json")

    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)["items"]
    assert item["metadata"]["name"] == "solo"
    assert item["spec"]["address"] == address
    assert item["status"]["leader"] is True


def test_a_master_without_the_cluster_secret_refuses_to_start(
    masters: Masters, tmp_path: Path
) -> None:
    masters.start("a")
    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not-the-secret-of-this-cluster\n")
    common = (
        "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "other"),
        "--metrics-listen", "", "--store", "etcd",
        "--etcd-endpoints", masters.etcd_endpoints, *masters.extra,
    )  # fmt: skip

    without = _master(*common)
    another = _master(*common, "--cluster-secret-file", str(wrong))

    assert without.returncode == 1
    assert "start this master with --cluster-secret-file FILE" in without.stderr
    assert another.returncode == 1
    assert "the cluster secret does not open this cluster's identity" in another.stderr
    assert "Traceback" not in without.stderr + another.stderr


def _master(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "master.cli.main", "master", "--insecure", "--no-lb"),
            *("--api-listen", "127.0.0.1:0", *args),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_an_unreachable_etcd_is_one_sentence(tmp_path: Path) -> None:
    result = _master(
        "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path),
        "--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:1", "--etcd-timeout", "1s",
    )  # fmt: skip

    assert result.returncode == 1
    assert result.stderr.startswith("pinnace master: etcd is unreachable at http://127.0.0.1:1")
    assert "Traceback" not in result.stderr
