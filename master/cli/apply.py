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

import sys
from pathlib import Path

from master.cli import apply_wire
from master.cli.apply_wire import ApplyRequest, SourceFile
from master.cli.errors import CliError
from master.cli.kinds import RESOURCE_NAMES

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 1024 * 1024


def _walk(directory: Path, recursive: bool) -> list[Path]:
    """Manifests of a directory as kubectl picks them: .yaml, .yml and .json files, sorted by
    name; subdirectories only when recursive (-R)."""
    found: list[Path] = []
    for entry in sorted(directory.iterdir()):
        if entry.is_dir():
            if recursive:
                found += _walk(entry, recursive)
        elif entry.suffix in MANIFEST_SUFFIXES:
            found.append(entry)
    return found


def read_sources(paths: list[str], recursive: bool = False) -> list[SourceFile]:
    """Every file named by -f: a file, each manifest of a directory, or stdin."""
    files: list[SourceFile] = []
    for raw in paths:
        if raw == "-":
            files.append(SourceFile(name="<stdin>", content=sys.stdin.buffer.read()))
            continue
        path = Path(raw)
        if path.is_dir():
            members = _walk(path, recursive)
        elif path.exists():
            members = [path]
        else:
            raise CliError(f'error: the path "{raw}" does not exist')
        for member in members:
            try:
                # Read one byte past the limit so the master reports the size clearly.
                with member.open("rb") as fh:
                    content = fh.read(MAX_FILE_BYTES + 1)
            except OSError as e:
                raise CliError(f"error: {member}: cannot read: {e.strerror}") from None
            files.append(SourceFile(name=str(member), content=content))
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
