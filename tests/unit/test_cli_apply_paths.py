"""`apply -f` names its files as pathlib did, without importing pathlib (master/cli/apply.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from master.cli.apply import read_sources, spelled_as_path

SPELLINGS = [
    *("", ".", "./", "a", "a/", "a//b", "./a/./b/", "a/../b", "/", "//", "///"),
    *("//a/b", "///a", "/a/", "~/x.yaml", "a/.", "..", "../a", ".hidden", "a/..yaml"),
]


@pytest.mark.parametrize("raw", SPELLINGS)
def test_a_path_is_spelled_as_pathlib_spells_it(raw: str) -> None:
    assert spelled_as_path(raw) == str(Path(raw))


def test_a_directory_s_manifests_are_named_and_picked_as_with_pathlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["b.yaml", "a.json", "c.yml", ".yaml", "..yaml", "d.txt", "e.", "f.YAML"]
    for name in names:
        (tmp_path / name).write_text("kind: X\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "g.yaml").write_text("kind: X\n")
    monkeypatch.chdir(tmp_path)

    flat = [f.name for f in read_sources(["./"])]
    deep = [f.name for f in read_sources([str(tmp_path) + "//"], recursive=True)]

    picked = sorted(n for n in names if Path(n).suffix in (".yaml", ".yml", ".json"))
    assert flat == picked == ["..yaml", "a.json", "b.yaml", "c.yml"]
    assert deep == [str(tmp_path / n) for n in picked] + [str(tmp_path / "sub" / "g.yaml")]
    assert read_sources([os.path.join(".", "b.yaml")])[0].name == "b.yaml"
