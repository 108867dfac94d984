"""Making a subPath inside its volume as the kubelet does, and hostPath creation."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from agent.mount_paths import SubPathEscape, make_host_path, make_sub_path, path_kind


def test_a_missing_subpath_is_made_with_the_volume_roots_mode(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    root.chmod(0o777)
    assert make_sub_path(str(root), "a/b") == "a/b"
    for made in (root / "a", root / "a" / "b"):
        assert made.is_dir()
        assert stat.S_IMODE(made.stat().st_mode) == 0o777  # not cut by the umask


def test_an_existing_subpath_directory_or_file_is_kept(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "keep").write_text("x")
    (tmp_path / "app.conf").write_text("conf")
    assert make_sub_path(str(tmp_path), "logs") == "logs"
    assert (tmp_path / "logs" / "keep").read_text() == "x"
    assert make_sub_path(str(tmp_path), "app.conf") == "app.conf"


def test_a_symlink_inside_the_volume_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    assert make_sub_path(str(tmp_path), "link/sub") == "real/sub"
    assert (tmp_path / "real" / "sub").is_dir()


@pytest.mark.parametrize("target", ["/etc", "../outside", "/nowhere/at/all"])
def test_a_symlink_leading_out_of_the_volume_is_refused(tmp_path: Path, target: str) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "logs").symlink_to(target)
    with pytest.raises(SubPathEscape):
        make_sub_path(str(root), "logs")
    with pytest.raises(SubPathEscape):
        make_sub_path(str(root), "logs/deeper")
    assert not (tmp_path / "outside" / "deeper").exists()


def test_a_file_in_the_middle_of_a_subpath_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(OSError):
        make_sub_path(str(tmp_path), "f/sub")


def test_path_kinds(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(tmp_path / "s"))
        assert path_kind(str(tmp_path / "s")) == "socket"
    assert path_kind(str(tmp_path)) == "directory"
    assert path_kind(str(tmp_path / "f")) == "file"
    assert path_kind(str(tmp_path / "none")) == "missing"
    assert path_kind(os.devnull) == "char"


def test_host_paths_are_made_as_the_kubelet_makes_them(tmp_path: Path) -> None:
    make_host_path(str(tmp_path / "d" / "e"), "directory")
    assert stat.S_IMODE((tmp_path / "d" / "e").stat().st_mode) & 0o755 == 0o755
    make_host_path(str(tmp_path / "file"), "file")
    assert (tmp_path / "file").read_text() == ""
    # FileOrCreate makes no parent directory
    with pytest.raises(FileNotFoundError):
        make_host_path(str(tmp_path / "nope" / "file"), "file")
