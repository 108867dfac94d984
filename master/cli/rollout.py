"""`pinnace rollout status|history|undo deployment/NAME`, as kubectl has them.

`status` follows a rollout until it completes, printing kubectl's progress lines
as they change, and fails with the reason when the rollout is stalled (a new pod
cannot pull its image or crash-loops) or the timeout passes. `history` lists the
revisions the master keeps; `undo` goes back to the previous (or a given) one.
"""

from __future__ import annotations

import json
import time
from typing import Any

from master.api.tables import format_table
from master.cli.client import CliError, MasterClient
from master.cli.kinds import KindError, split_kind_name
from protos import cluster_pb2

POLL_SECONDS = 0.5


def rollout_message(dep: dict[str, Any]) -> tuple[str, bool]:
    """(what to print, done) for one observation of a deployment, like kubectl."""
    name = dep["metadata"]["name"]
    spec, status = dep.get("spec", {}), dep.get("status", {})
    if status.get("observedGeneration", 0) < dep["metadata"].get("generation", 0):
        return "Waiting for deployment spec update to be observed...", False
    stalled = next(
        (
            c
            for c in status.get("conditions", [])
            if c.get("type") == "Progressing" and c.get("status") == "False"
        ),
        None,
    )
    if stalled is not None:
        raise CliError(f'error: deployment "{name}" rollout is stalled: {stalled.get("message")}')
    want = spec.get("replicas", 0)
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < want:
        return f"{prefix}{updated} out of {want} new replicas have been updated...", False
    if total > updated:
        return f"{prefix}{total - updated} old replicas are pending termination...", False
    if available < updated:
        return f"{prefix}{available} of {updated} updated replicas are available...", False
    return f'deployment "{name}" successfully rolled out', True


def _deployment_name(target: str, name: str | None) -> str:
    try:
        kind, resolved = split_kind_name(target, name)
    except KindError as e:
        raise CliError(f"error: {e}") from None
    if kind != "Deployment":
        raise CliError(f"error: rollout works on deployments, not {target}")
    if not resolved:
        raise CliError("error: rollout: give the deployment as deployment/NAME")
    return resolved


def _get(client: MasterClient, name: str, namespace: str) -> dict[str, Any]:
    reply = client.call(
        client.stub.GetObjects,
        cluster_pb2.GetObjectsRequest(kind="Deployment", name=name, namespace=namespace),
    )
    obj: dict[str, Any] = json.loads(reply.objects[0].json)
    return obj


def run_rollout(
    address: str,
    action: str,
    target: str,
    name: str | None,
    to_revision: int,
    timeout: float,
    namespace: str = "default",
) -> int:
    dep_name = _deployment_name(target, name)
    client = MasterClient(address)
    try:
        if action == "status":
            return _status(client, dep_name, timeout, namespace)
        if action == "history":
            return _history(client, dep_name, namespace)
        reply = client.call(
            client.stub.RollbackDeployment,
            cluster_pb2.RollbackDeploymentRequest(
                name=dep_name, to_revision=to_revision, namespace=namespace
            ),
        )
        print(f"deployment.apps/{dep_name} rolled back (now revision {reply.revision})")
        return 0
    finally:
        client.close()


def _status(client: MasterClient, name: str, timeout: float, namespace: str) -> int:
    deadline = time.monotonic() + timeout if timeout > 0 else float("inf")
    last = ""
    while True:
        message, done = rollout_message(_get(client, name, namespace))
        if message != last:
            print(message, flush=True)
            last = message
        if done:
            return 0
        if time.monotonic() >= deadline:
            raise CliError(f"error: timed out after {timeout:g}s waiting for the rollout of {name}")
        time.sleep(POLL_SECONDS)


def _history(client: MasterClient, name: str, namespace: str) -> int:
    dep = _get(client, name, namespace)
    print(f"deployment.apps/{name}")
    rows = [
        [str(r["revision"]), ",".join(r.get("images", [])), r.get("changeCause") or "<none>"]
        for r in dep.get("status", {}).get("revisions", [])
    ]
    print(format_table(["REVISION", "IMAGES", "CHANGE-CAUSE"], rows))
    return 0
