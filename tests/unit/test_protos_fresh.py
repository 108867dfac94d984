"""The committed generated code matches the .proto files (make protos regenerates it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "protos.generate", str(tmp_path)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    generated = sorted(p for p in (tmp_path / "protos").iterdir() if p.is_file())
    generated.append(tmp_path / "protos" / "kubernetes" / "descriptors.binpb")

    assert generated, "protoc produced nothing"
    stale = [
        p.name for p in generated if (REPO / p.relative_to(tmp_path)).read_bytes() != p.read_bytes()
    ]
    assert not stale, f"generated files are stale, run `make protos`: {stale}"
