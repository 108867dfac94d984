"""Regenerate the Python code for the wire contract from protos/*.proto.

Run as `python -m protos.generate [OUT_DIR]` (the Makefile's `make protos`).
With OUT_DIR the code is written there instead of next to the .proto files; the
freshness test uses that to compare a fresh generation with what is committed.
Generated files are never edited by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent


def generate(out_dir: Path) -> None:
    """Run protoc with the python, grpc and mypy-protobuf (.pyi) plugins."""
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").glob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    # mypy-protobuf's plugins sit next to the interpreter (the venv's bin/).
    bindir = Path(sys.executable).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *sources,
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit status {code}")
    generate_kubernetes(out_dir)


def generate_kubernetes(out_dir: Path) -> None:
    """Kubernetes' vendored schema (protos/kubernetes, see its vendor.py) as one descriptor
    set, which the master's API loads to read protobuf request bodies."""
    base = ROOT / "protos" / "kubernetes"
    sources = sorted(str(p.relative_to(base)) for p in base.rglob("generated.proto"))
    target = out_dir / "protos" / "kubernetes" / "descriptors.binpb"
    target.parent.mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        ["protoc", f"-I{base}", f"--descriptor_set_out={target}", "--include_imports", *sources]
    )
    if code != 0:
        raise SystemExit(f"protoc failed on the Kubernetes schema with exit status {code}")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    generate(out)


if __name__ == "__main__":
    main()
