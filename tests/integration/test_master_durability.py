"""A real master's durability edges: one master per data dir, and a full disk.

- A second `pinnace master` on a data dir in use exits 1 with one sentence
  naming the holder (pid and address) and rewrites nothing (pinnace.conf).
- With its data dir on a small tmpfs that is full, an apply fails with one
  sentence, changes nothing the client can see, and is NOT saved later once
  space is back (a kill -9 and restart show it never happened); the retry is
  saved. Needs root for the mount, as CI has; the mount is always undone.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.cluster import REPO, LocalCluster
from tests.support import unavailable

pytestmark = pytest.mark.integration


def _deployment(name: str, note_bytes: int = 0) -> bytes:
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"note": "x" * note_bytes}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "pinnace/httpd:latest"}]},
            },
        },
    }
    return yaml.safe_dump(doc).encode()


def _deployments(cluster: LocalCluster) -> set[str]:
    return {d["metadata"]["name"] for d in cluster.get_json("deployments")["items"]}


def test_a_second_master_on_the_same_data_dir_is_refused_and_rewrites_nothing(
    cluster: LocalCluster,
) -> None:
    address = cluster.start_master("--no-lb")
    assert cluster.master_proc is not None
    conf = cluster.config_path
    before = (conf.read_bytes(), conf.stat().st_mtime_ns)

    second = subprocess.run(
        [
            *(sys.executable, "-m", "master.cli.main", "master", "--no-lb"),
            *("--listen", "127.0.0.1:0", "--data-dir", str(cluster.workdir / "master-data")),
            *("--api-listen", "127.0.0.1:0"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )

    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"pid {cluster.master_proc.pid}" in lines[0] and address in lines[0]
    assert (conf.read_bytes(), conf.stat().st_mtime_ns) == before
    assert cluster.cli("get", "nodes").returncode == 0


@pytest.fixture
def small_data_dir(cluster: LocalCluster) -> Iterator[Path]:
    """The master's data dir on a 16 MiB tmpfs, unmounted after its master is gone."""
    if os.geteuid() != 0:
        unavailable("the full-disk test needs root to mount a tmpfs")
    data = cluster.workdir / "master-data"
    data.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(data)], check=True
    )
    try:
        yield data
    finally:
        for proc in list(cluster._all_procs):  # the mount outlives no process
            cluster.kill(proc)
        subprocess.run(["umount", str(data)], check=True)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = b"\0" * (64 * 1024)
    try:
        while True:
            os.write(fd, chunk)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)
    return filler


def test_a_write_refused_by_a_full_disk_leaves_no_trace_and_a_retry_lands(
    cluster: LocalCluster, small_data_dir: Path, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    small, big = tmp_path / "small.yaml", tmp_path / "big.yaml"
    small.write_bytes(_deployment("small"))
    # Bigger than anything the WAL holds yet, so committing it must grow a file.
    big.write_bytes(b"---\n".join(_deployment(f"big-{i}", note_bytes=200_000) for i in range(3)))
    cluster.cli("apply", "-f", str(small))
    filler = _fill(small_data_dir)

    refused = cluster.cli("apply", "-f", str(big), check=False)
    seen_while_full = _deployments(cluster)
    filler.unlink()
    cluster.cli("scale", "deployment", "small", "--replicas", "0")  # a later commit
    cluster.kill_master()
    cluster.start_master("--no-lb")
    after_restart = _deployments(cluster)
    cluster.cli("apply", "-f", str(big))
    cluster.kill_master()
    cluster.start_master("--no-lb")
    after_retry = _deployments(cluster)

    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing was changed" in lines[0], refused.stderr
    assert "full" in lines[0]
    assert seen_while_full == {"small"}
    assert after_restart == {"small"}
    assert after_retry == {"small", "big-0", "big-1", "big-2"}
