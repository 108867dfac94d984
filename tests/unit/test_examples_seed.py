"""The project's seed manifests (examples/seed/) are byte for byte the reference seed.

The reference lives in ../shared/fixtures/seed beside the repository where the project is
built (CI clones it there); this is the one place that reads it. A clone on its own has no
reference to compare with, and only then is the comparison skipped.
"""

from __future__ import annotations

import pytest

from tests.support import REPO, SEED

REFERENCE = REPO / "../shared/fixtures/seed"
FILES = ("deployment.yaml", "service.yaml")


@pytest.mark.parametrize("name", FILES)
def test_the_project_seed_is_the_reference_seed(name: str) -> None:
    if not REFERENCE.is_dir():
        pytest.skip("no ../shared/fixtures/seed beside the repository to compare with")

    assert (SEED / name).read_bytes() == (REFERENCE / name).read_bytes()


def test_the_project_carries_both_seed_manifests() -> None:
    assert sorted(p.name for p in SEED.iterdir()) == sorted(FILES)
