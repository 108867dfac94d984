"""The master's data dir: one master at a time (flock), private modes, and a store that refuses
an emptied or unwritable database of an existing cluster with one sentence."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from master.store.datadir import DataDirLock
from master.store.port import StoreError
from master.store.sqlite import SqliteStore
from tests.support import unavailable

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_second_lock_on_the_data_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = DataDirLock.acquire(tmp_path, "127.0.0.1:0")
    first.advertise("127.0.0.1:7411")
    try:
        with pytest.raises(StoreError) as refused:
            DataDirLock.acquire(tmp_path, "127.0.0.1:7999")
    finally:
        first.release()
    again = DataDirLock.acquire(tmp_path, "127.0.0.1:7999")
    again.release()

    message = str(refused.value)
    assert f"pid {os.getpid()}" in message and "127.0.0.1:7411" in message
    assert str(tmp_path) in message and "\n" not in message


def test_a_new_store_and_its_data_dir_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    DataDirLock.acquire(data, "127.0.0.1:0").release()
    store = SqliteStore.in_data_dir(data)
    store.write([], [], meta={"k": "v"})

    files = sorted(p.name for p in data.iterdir())
    modes = {p.name: _mode(p) for p in data.iterdir()}
    store.close()

    assert _mode(data) == 0o700
    assert {"pinnace.db", "pinnace.db-wal", "pinnace.db-shm"} <= set(files)
    assert all(mode == 0o600 for mode in modes.values()), modes


def test_loose_modes_left_behind_are_tightened_at_start_never_loosened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    SqliteStore.in_data_dir(data).close()
    os.chmod(data, 0o755)
    os.chmod(data / "pinnace.db", 0o644)
    shm = data / "pinnace.db-shm"
    shm.write_bytes(b"")
    os.chmod(shm, 0o444)

    DataDirLock.acquire(data, "127.0.0.1:0").release()

    assert _mode(data) == 0o700
    assert _mode(data / "pinnace.db") == 0o600
    assert _mode(shm) == 0o400


def test_store_commits_with_synchronous_full(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "pinnace.db")
    conn = store._conn  # the pragma is per connection, only visible here
    assert conn is not None
    level = conn.execute("PRAGMA synchronous").fetchone()[0]
    store.close()

    assert level == 2  # FULL


def test_an_emptied_database_of_an_existing_cluster_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pinnace.db").write_bytes(b"")

    with pytest.raises(StoreError) as refused:
        SqliteStore.in_data_dir(tmp_path, cluster_exists=True)

    message = str(refused.value)
    assert "pinnace.db is empty" in message and "backup" in message and "\n" not in message


def test_an_empty_database_of_a_new_cluster_is_just_new(tmp_path: Path) -> None:
    (tmp_path / "pinnace.db").write_bytes(b"")

    store = SqliteStore.in_data_dir(tmp_path, cluster_exists=False)

    assert store.load_all() == []
    store.close()


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A data dir owned by an unprivileged user (root may write any file, so the check of a
    read-only file has to run as someone who cannot)."""
    if os.geteuid() != 0:
        unavailable("the read-only store test needs root to run the store as another user")
    base = Path(tempfile.mkdtemp(prefix="pinnace-ro-"))
    try:
        os.chmod(base, 0o755)
        data = base / "data"
        data.mkdir(mode=0o700)
        os.chown(data, NOBODY, NOBODY)
        yield data
    finally:
        shutil.rmtree(base, ignore_errors=True)


_OPEN = (
    "import sys\n"
    "from pathlib import Path\n"
    "from master.store.port import StoreError\n"
    "from master.store.sqlite import SqliteStore\n"
    "try:\n"
    "    s = SqliteStore.in_data_dir(Path(sys.argv[1]), cluster_exists=True)\n"
    "    s.write([], [], meta={'k': sys.argv[2]})\n"
    "    s.close()\n"
    "except StoreError as e:\n"
    "    print(e, file=sys.stderr)\n"
    "    sys.exit(1)\n"
)


def _open_as_nobody(data: Path, value: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"),
            *(sys.executable, "-c", _OPEN, str(data), value),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
    )


@pytest.mark.parametrize("name", ["pinnace.db", "pinnace.db-wal", "pinnace.db-shm"])
def test_a_read_only_store_file_is_refused_naming_it(nobody_dir: Path, name: str) -> None:
    made = _open_as_nobody(nobody_dir, "first")
    assert made.returncode == 0, made.stderr
    for suffix in ("-wal", "-shm"):
        path = nobody_dir / f"pinnace.db{suffix}"
        if not path.exists():
            path.write_bytes(b"")
            os.chown(path, NOBODY, NOBODY)
    os.chmod(nobody_dir / name, 0o444)

    refused = _open_as_nobody(nobody_dir, "second")

    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert f"{nobody_dir / name} is not writable" in lines[0] and "chmod 600" in lines[0]
