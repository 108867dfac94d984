"""Copy Kubernetes' published protobuf schema into protos/kubernetes/ (run by hand, rarely).

    python -m protos.kubernetes.vendor API_DIR APIMACHINERY_DIR

API_DIR and APIMACHINERY_DIR are checkouts of k8s.io/api and k8s.io/apimachinery. The
generated.proto files of the groups pinnace serves (core, apps, networking.k8s.io,
discovery.k8s.io, storage.k8s.io, coordination.k8s.io; autoscaling/v1 for Scale) and of
the apimachinery packages they import are copied unchanged, under the paths they import
each other by. `make protos` compiles them into descriptors.binpb.

The .proto files alone cannot say how Kubernetes writes an object as JSON, because two
facts live only in the Go types (types.go) the protos are generated from; this script
reads them there and writes them to gofields.json:
- "inline": fields of an embedded Go struct (`VolumeSource` in a Volume), whose fields
  JSON puts in the parent object, not under the proto field's name;
- "pointer": fields that are Go pointers (`Replicas *int32`). Go's protobuf encoder writes
  every non-pointer field, zero or not, and a pointer field only when it is set: so a zero
  in a non-pointer field means "not set" (the JSON leaves it out), while a zero in a
  pointer field is a value the client chose (`replicas: 0`).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (checkout, directory in it, proto package path it is imported by)
API_PACKAGES = (
    "core/v1",
    "apps/v1",
    "networking/v1",
    "autoscaling/v1",
    "discovery/v1",
    "storage/v1",
    "coordination/v1",
)
MACHINERY_PACKAGES = (
    "pkg/api/resource",
    "pkg/apis/meta/v1",
    "pkg/runtime",
    "pkg/runtime/schema",
    "pkg/util/intstr",
)

_STRUCT = re.compile(r"^type (\w+) struct \{")
# A field with a protobuf tag: `\tName Type \`...\`` or an embedded `\tType \`...\``.
_FIELD = re.compile(r"^\t([\w.]+)(?:\s+(\S+))?\s+`([^`]*)`")
_JSON_NAME = re.compile(r'json:"([^",]*)')
_PROTO_NUMBER = re.compile(r'protobuf:"\w+,(\d+),')


def go_fields(go_source: str, package: str) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(inline, pointer): message full name -> proto field numbers, from one Go file."""
    inline: dict[str, list[int]] = {}
    pointer: dict[str, list[int]] = {}
    message = ""
    for line in go_source.splitlines():
        start = _STRUCT.match(line)
        if start:
            message = f"{package}.{start.group(1)}"
            continue
        if line.startswith("}"):
            message = ""
            continue
        field = _FIELD.match(line)
        tag = _PROTO_NUMBER.search(field.group(3)) if message and field else None
        if field is None or tag is None:
            continue
        json_name = _JSON_NAME.search(field.group(3))
        go_type, number = field.group(2), int(tag.group(1))
        if go_type is None:
            # embedded: `VolumeSource \`json:",inline"\`` is inlined, `ListMeta \`json:"metadata"\``
            # is not.
            if json_name is None or not json_name.group(1):
                inline.setdefault(message, []).append(number)
        elif go_type.startswith("*"):
            pointer.setdefault(message, []).append(number)
    return inline, pointer


def _package_of(proto: Path) -> str:
    match = re.search(r"^package ([\w.]+);", proto.read_text(), re.MULTILINE)
    if not match:
        raise SystemExit(f"{proto}: no package line")
    return match.group(1)


def vendor(api: Path, machinery: Path) -> None:
    sources = [(api / p, f"k8s.io/api/{p}") for p in API_PACKAGES] + [
        (machinery / p, f"k8s.io/apimachinery/{p}") for p in MACHINERY_PACKAGES
    ]
    inline: dict[str, list[int]] = {}
    pointer: dict[str, list[int]] = {}
    for directory, import_path in sources:
        proto = directory / "generated.proto"
        target = HERE / import_path / "generated.proto"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(proto, target)
        package = _package_of(proto)
        for go in sorted(directory.glob("*.go")):
            if go.name.endswith("_test.go") or go.name.startswith("generated."):
                continue
            found_inline, found_pointer = go_fields(go.read_text(), package)
            inline.update(found_inline)
            pointer.update(found_pointer)
    document = {
        "inline": dict(sorted(inline.items())),
        "pointer": dict(sorted(pointer.items())),
    }
    (HERE / "gofields.json").write_text(json.dumps(document, indent=1) + "\n")


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m protos.kubernetes.vendor API_DIR APIMACHINERY_DIR")
    vendor(Path(sys.argv[1]), Path(sys.argv[2]))


if __name__ == "__main__":
    main()
