"""No tracked file names a path of the machine it was built on, or reaches outside the repository.

A stranger's clone must work on its own: a tracked file holding an absolute path into this
checkout or beside it (its parent folder, where CI also keeps the shared fixtures) works only
where that path happens to exist. The paths are computed here, at test time, from where this
checkout is (and, for a git worktree, where its main checkout is), so the test guards every
machine it runs on. Reaching beside the repository by a relative path is allowed in one place
only: the identity test of the seed manifests (tests/unit/test_examples_seed.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

IDENTITY_TEST = "tests/unit/test_examples_seed.py"
# Written in two parts so that this file does not hold what it looks for.
UP_TO_SHARED = re.compile(re.escape("..") + r"[/\\]shared\b|parent\s*/\s*['\"]shared['\"]")


def _checkouts() -> list[Path]:
    """This checkout and, when it is a git worktree, the main checkout it belongs to."""
    found = [REPO]
    common = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if common.returncode == 0 and common.stdout.strip():
        main = Path(common.stdout.strip()).parent
        if main != REPO:
            found.append(main)
    return found


def machine_paths(checkouts: list[Path]) -> list[str]:
    """The absolute paths no tracked file may hold: each checkout, and the folder beside it."""
    needles: list[str] = []
    for checkout in checkouts:
        needles.append(str(checkout))
        if checkout.parent != Path(checkout.anchor):  # never "/": every path starts with it
            needles.append(f"{checkout.parent}/")
    return sorted(set(needles), key=len, reverse=True)


def offenders(files: dict[str, bytes], needles: list[str]) -> list[str]:
    """`file: what it holds` for each tracked file naming a machine path or reaching beside."""
    found: list[str] = []
    for name, data in files.items():
        text = data.decode("utf-8", errors="replace")
        found += [f"{name}: {needle}" for needle in needles if needle in text]
        if name != IDENTITY_TEST and (hit := UP_TO_SHARED.search(text)):
            found.append(f"{name}: {hit.group(0)}")
    return found


def _tracked_files() -> dict[str, bytes]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False, timeout=60
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no tracked files to check")
    names = [n for n in listed.stdout.decode().split("\0") if n]
    return {n: (REPO / n).read_bytes() for n in names if (REPO / n).is_file()}


def test_no_tracked_file_names_a_machine_path_or_reaches_beside_the_repository() -> None:
    files = _tracked_files()

    assert len(files) > 50  # the listing worked: the check below ran over the project
    assert offenders(files, machine_paths(_checkouts())) == []


def test_the_check_finds_machine_paths_and_relative_reaches() -> None:
    checkout = Path("/srv/build/pinnace")
    needles = machine_paths([checkout, Path("/srv/main/pinnace")])
    up = ".." + "/shared"
    files = {
        "a.py": f'SEED = Path("{checkout.parent}/shared/fixtures/seed")'.encode(),
        "b.sh": b"cd /srv/build/pinnace && make",
        "c.md": f"see `{up}/DESIGN.md`".encode(),
        "d.py": b"SEED = REPO.parent / " + b'"shared" / "fixtures"',
        "e.py": b'DATA = Path("/srv/main/elsewhere")',
        IDENTITY_TEST: f'REFERENCE = REPO / "{up}/fixtures/seed"'.encode(),
        "fine.py": b'TMP = Path("/tmp/x"); ROOT = Path("/")',
    }

    found = offenders(files, needles)

    assert found == [
        "a.py: /srv/build/",
        "b.sh: /srv/build/pinnace",
        "b.sh: /srv/build/",
        f"c.md: {up}",
        "d.py: parent / " + '"shared"',
        "e.py: /srv/main/",
    ]


def test_a_checkout_at_the_root_does_not_forbid_every_absolute_path() -> None:
    assert machine_paths([Path("/pinnace")]) == ["/pinnace"]
