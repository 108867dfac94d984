"""The kubectl-style verbs: call the master, print like kubectl.

Files (`delete -f`) are read by master/cli/apply.py and sent whole; the master parses
and validates them, so the CLI and the server can never disagree about what a manifest
means. `apply` itself lives there, lean; the table renderer (master/api/tables.py) is
imported where a table is printed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc

from kernel.names import CLUSTER_SCOPED, DEFAULT_NAMESPACE
from master.cli.apply import read_sources
from master.cli.client import CliError, MasterClient
from master.cli.kinds import RESOURCE_NAMES, KindError, resolve_kind, split_kind_name
from protos import cluster_pb2

# Kinds listed without a namespace (-n and -A do not apply).
CLUSTER_KINDS = CLUSTER_SCOPED | {"Master"}


def _resource(kind: str, name: str) -> str:
    return f"{RESOURCE_NAMES.get(kind, kind.lower())}/{name}"


def _parse_selector(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    selector = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise CliError(f"error: -l {text}: expected key=value[,key=value]")
        selector[key.strip()] = value.strip().lstrip("=")
    return selector


def _with_namespace(
    header: list[str], rows: list[list[str]], objs: list[dict[str, Any]]
) -> tuple[list[str], list[list[str]]]:
    """kubectl's -A table: a NAMESPACE column first."""
    namespaces = [o["metadata"].get("namespace", "") for o in objs]
    return ["NAMESPACE", *header], [[ns, *row] for ns, row in zip(namespaces, rows, strict=True)]


def _hide_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without metadata.managedFields: as kubectl, they show only when asked."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _print_objects(
    kind: str,
    objs: list[dict[str, Any]],
    output: str | None,
    single: bool,
    where: str | None = DEFAULT_NAMESPACE,
    show_managed_fields: bool = False,
) -> None:
    """`where`: the namespace listed (None: every one, -A; "": a cluster-scoped kind)."""
    if not show_managed_fields:
        objs = [_hide_managed_fields(o) for o in objs]
    if output in ("json", "yaml"):
        doc: dict[str, Any] = (
            objs[0] if single else {"apiVersion": "v1", "kind": "List", "items": objs}
        )
        if output == "json":
            print(json.dumps(doc, indent=4))
        else:
            import yaml  # only for -o yaml

            print(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False), end="")
        return
    if output == "name":
        for o in objs:
            print(_resource(kind, o["metadata"]["name"]))
        return
    if not objs:
        suffix = f" in {where} namespace" if where else ""
        print(f"No resources found{suffix}.", file=sys.stderr)
        return
    from master.api.tables import format_table, header_for, rows_for

    wide = output == "wide"
    header, rows = header_for(kind, wide), rows_for(kind, objs, wide)
    if where is None:
        header, rows = _with_namespace(header, rows, objs)
    print(format_table(header, rows))


def run_get(
    address: str,
    kind_text: str,
    name: str | None,
    output: str | None,
    selector: str | None,
    watch: bool,
    namespace: str = DEFAULT_NAMESPACE,
    all_namespaces: bool = False,
    show_managed_fields: bool = False,
) -> int:
    try:
        kind, name = split_kind_name(kind_text, name)
    except KindError as e:
        raise CliError(f"error: {e}") from None
    if all_namespaces and name:
        raise CliError(
            "error: a resource cannot be retrieved by name across all namespaces (use -n NS)"
        )
    scoped = kind not in CLUSTER_KINDS
    where = (None if all_namespaces else namespace) if scoped else ""
    client = MasterClient(address)
    try:
        request = cluster_pb2.GetObjectsRequest(
            kind=kind,
            name=name or "",
            label_selector=_parse_selector(selector),
            namespace=namespace,
            all_namespaces=all_namespaces,
        )
        objs = [json.loads(o.json) for o in list_pages(client, request)]
        _print_objects(kind, objs, output, bool(name), where, show_managed_fields)
        if watch:
            _follow(
                client, kind, name, output, namespace, all_namespaces and scoped,
                show_managed_fields,
            )  # fmt: skip
    finally:
        client.close()
    return 0


def _follow(
    client: MasterClient,
    kind: str,
    name: str | None,
    output: str | None,
    namespace: str,
    all_namespaces: bool,
    show_managed_fields: bool = False,
) -> None:
    """`-w`: print each change as it happens, one row (or document) per change."""
    sys.stdout.flush()
    request = cluster_pb2.WatchObjectsRequest(
        kind=kind,
        resource_version=_high_water(client, kind),
        namespace=namespace,
        all_namespaces=all_namespaces,
    )
    try:
        for change in client.stub.WatchObjects(request):
            obj = json.loads(change.object.json)
            if name and obj["metadata"]["name"] != name:
                continue
            if output in ("json", "yaml", "name"):
                _print_objects(
                    kind, [obj], output, single=True, show_managed_fields=show_managed_fields
                )
            else:
                from master.api.tables import format_table, header_for, rows_for

                header, rows = (
                    header_for(kind, output == "wide"),
                    rows_for(kind, [obj], output == "wide"),
                )
                if all_namespaces:
                    header, rows = _with_namespace(header, rows, [obj])
                print(format_table(header, rows).splitlines()[1])
            sys.stdout.flush()
    except grpc.RpcError as e:
        raise client.translate(e) from None


def list_pages(
    client: MasterClient, request: cluster_pb2.GetObjectsRequest
) -> list[cluster_pb2.ObjectJson]:
    """Every object a GetObjects request names, fetched page by page (a list of large
    objects can exceed what one reply may carry)."""
    request.paged = True
    objects: list[cluster_pb2.ObjectJson] = []
    while True:
        reply = client.call(client.stub.GetObjects, request)
        objects.extend(reply.objects)
        if not reply.continue_token:
            return objects
        request.continue_token = reply.continue_token


def _high_water(client: MasterClient, kind: str) -> int:
    objects = list_pages(client, cluster_pb2.GetObjectsRequest(kind=kind, all_namespaces=True))
    versions = [int(json.loads(o.json)["metadata"].get("resourceVersion", 0)) for o in objects]
    return max(versions, default=0) or 1


def run_delete(
    address: str,
    kind_text: str | None,
    name: str | None,
    paths: list[str] | None,
    recursive: bool = False,
    grace_period: int = -1,
    namespace: str | None = None,
) -> int:
    """`delete`; `namespace` (-n; None: "default") is the object's, or with -f the one
    for objects that name none."""
    if paths:
        if kind_text:
            raise CliError("error: give either -f FILE or KIND NAME, not both")
        files = read_sources(paths, recursive)
        if not files:
            print("No resources found", file=sys.stderr)
            return 0
        request = cluster_pb2.DeleteObjectsRequest(
            files=[cluster_pb2.SourceFile(name=f.name, content=f.content) for f in files],
            namespace=namespace or "",
        )
    else:
        if not kind_text:
            raise CliError("error: you must give -f FILE or KIND NAME")
        try:
            kind, name = split_kind_name(kind_text, name)
        except KindError as e:
            raise CliError(f"error: {e}") from None
        if not name:
            raise CliError(f"error: delete {kind_text}: give the name of the object to delete")
        request = cluster_pb2.DeleteObjectsRequest(kind=kind, name=name, namespace=namespace or "")
    if grace_period >= 0:
        request.grace_period_seconds = grace_period
    client = MasterClient(address)
    try:
        reply = client.call(client.stub.DeleteObjects, request)
    finally:
        client.close()
    status = 0
    for r in reply.results:
        if r.action == "not found":
            print(
                f"Error from server (NotFound): {_resource(r.kind, r.name)} not found",
                file=sys.stderr,
            )
            status = 1
        else:
            print(f'{RESOURCE_NAMES.get(r.kind, r.kind.lower())} "{r.name}" deleted')
    return status


def run_scale(
    address: str,
    kind_text: str,
    name: str | None,
    replicas: int,
    namespace: str = DEFAULT_NAMESPACE,
) -> int:
    try:
        kind, name = split_kind_name(kind_text, name)
    except KindError as e:
        raise CliError(f"error: {e}") from None
    if kind not in ("Deployment", "StatefulSet"):
        raise CliError(
            f"error: cannot scale {kind_text}: only deployments and statefulsets can be scaled"
        )
    if not name:
        raise CliError(f"error: scale {kind.lower()}: give the {kind.lower()}'s name")
    if replicas < 0:
        raise CliError(f"error: --replicas must be >= 0, got {replicas}")
    client = MasterClient(address)
    try:
        client.call(
            client.stub.ScaleDeployment,
            cluster_pb2.ScaleDeploymentRequest(
                name=name, replicas=replicas, kind=kind, namespace=namespace
            ),
        )
    finally:
        client.close()
    print(f"{_resource(kind, name)} scaled")
    return 0


def run_create_namespace(address: str, name: str, dry_run: bool = False) -> int:
    """`create namespace NAME` (kubectl's): an apply of one Namespace that must be new."""
    manifest = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {json.dumps(name)}\n"
    client = MasterClient(address)
    try:
        reply = client.call(
            client.stub.ApplyManifests,
            cluster_pb2.ApplyManifestsRequest(
                files=[cluster_pb2.SourceFile(name="namespace", content=manifest.encode())],
                dry_run=dry_run,
            ),
        )
    finally:
        client.close()
    if reply.results and reply.results[0].action == "unchanged":
        raise CliError(f'Error from server (AlreadyExists): namespaces "{name}" already exists')
    print(f"namespace/{name} created{' (dry run)' if dry_run else ''}")
    return 0


__all__ = [
    "resolve_kind",
    "run_create_namespace",
    "run_delete",
    "run_get",
    "run_scale",
]
