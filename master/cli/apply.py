"""`pinnace apply -f`: read the manifests, send them whole, print what the master did.

The master parses and validates the files, so the CLI and the server can never disagree
about what a manifest means; the CLI only finds and reads them (as kubectl picks them
from a directory). `apply` is the command on the way to a running pod (issue 15: apply ->
3 running), so this module loads no more than it sends with: the request and reply
written and read by master/cli/apply_wire.py instead of the protobuf runtime, sent as a
gRPC call over HTTP/2 on Python's own ssl and socket (master/cli/h2_client.py) instead of
grpcio, whose import was most of the CLI's start before it could send. Where that client
cannot send as grpcio would (no memfd for the credentials, or an HTTP proxy configured:
h2_client.available) grpcio sends it. `delete -f` reads its files here too.
"""

from __future__ import annotations

import os
import sys

from master.cli import apply_wire
from master.cli.apply_wire import ApplyRequest, SourceFile
from master.cli.errors import CliError
from master.cli.kinds import RESOURCE_NAMES

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 1024 * 1024


def spelled_as_path(raw: str) -> str:
    """`raw` as str(pathlib.Path(raw)) spells it (one slash between parts, no `.` parts, no
    trailing slash; `..` kept), the name the master's messages give a file. `apply` reads
    its files without pathlib, whose import (with urllib.parse and fnmatch) was ~4 ms of
    the CLI's start before it sends (issue 15)."""
    root = "/" if raw.startswith("/") else ""
    if raw.startswith("//") and not raw.startswith("///"):
        root = "//"  # POSIX leaves a leading double slash to the system, as pathlib does
    return root + "/".join(p for p in raw.split("/") if p and p != ".") or "."


def _child(directory: str, name: str) -> str:
    """str(Path(directory) / name) for a `directory` spelled as spelled_as_path does."""
    if directory == ".":
        return name
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


def _suffix(name: str) -> str:
    """Path(name).suffix: from the last dot, unless the name starts or ends with it."""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def _walk(directory: str, recursive: bool) -> list[str]:
    """Manifests of a directory as kubectl picks them: .yaml, .yml and .json files, sorted by
    name; subdirectories only when recursive (-R)."""
    found: list[str] = []
    for name in sorted(os.listdir(directory)):
        entry = _child(directory, name)
        if os.path.isdir(entry):
            if recursive:
                found += _walk(entry, recursive)
        elif _suffix(name) in MANIFEST_SUFFIXES:
            found.append(entry)
    return found


def read_sources(paths: list[str], recursive: bool = False) -> list[SourceFile]:
    """Every file named by -f: a file, each manifest of a directory, or stdin."""
    files: list[SourceFile] = []
    for raw in paths:
        if raw == "-":
            files.append(SourceFile(name="<stdin>", content=sys.stdin.buffer.read()))
            continue
        path = spelled_as_path(raw)
        if os.path.isdir(path):
            members = _walk(path, recursive)
        elif os.path.exists(path):
            members = [path]
        else:
            raise CliError(f'error: the path "{raw}" does not exist')
        for member in members:
            try:
                # Read one byte past the limit so the master reports the size clearly.
                with open(member, "rb") as fh:
                    content = fh.read(MAX_FILE_BYTES + 1)
            except OSError as e:
                raise CliError(f"error: {member}: cannot read: {e.strerror}") from None
            files.append(SourceFile(name=member, content=content))
    return files


def run_apply(
    address: str,
    paths: list[str],
    dry_run: bool,
    recursive: bool = False,
    namespace: str | None = None,
) -> int:
    """`apply -f`; `namespace` (-n) goes to objects that name none (None: "default")."""
    files = read_sources(paths, recursive)
    if not files:
        raise CliError("error: no objects passed to apply")
    request = ApplyRequest(tuple(files), dry_run=dry_run, namespace=namespace or "")
    reply = _send(address, request)
    for warning in reply.warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    suffix = " (dry run)" if dry_run else ""
    for r in reply.results:
        kind = RESOURCE_NAMES.get(r.kind, r.kind.lower())
        print(f"{kind}/{r.name} {r.action}{suffix}")
    return 0


def _send(address: str, request: ApplyRequest) -> apply_wire.ApplyResponse:
    """ApplyManifests to the master(s) at `address`: over HTTP/2 by hand where it can."""
    from master.cli import h2_client

    if h2_client.available():
        data = h2_client.H2Client(address).call(
            apply_wire.METHOD, apply_wire.encode_request(request)
        )
        try:
            return apply_wire.decode_response(data)
        except apply_wire.WireError as e:
            raise CliError(f"error: the master's reply cannot be read: {e}") from None
    from master.cli.client import MasterClient

    client = MasterClient(address)
    try:
        return client.call_method(
            apply_wire.METHOD, apply_wire.encode_request, apply_wire.decode_response, request
        )
    finally:
        client.close()
