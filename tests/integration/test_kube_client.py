"""The official `kubernetes` Python client against a real pinnace master.

list/watch/create/patch/replace/delete as a program would call them, with
Kubernetes' error semantics (404, 409 on a stale resourceVersion, 410 on a
watch from too old a version, 422 naming the field); certificates decide who may
talk at all; and one manifest stored through pinnace's CLI and through kubectl
is the same object.
"""

from __future__ import annotations

import json
import signal
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch

from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.kube_helpers import Kubectl, seed_dir, wheel_kubectl, write_kubeconfig

NS = "default"


@pytest.fixture
def api(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    cluster.start_master("--no-lb")
    loaded = client.Configuration()
    config.load_kube_config(str(write_kubeconfig(cluster)), client_configuration=loaded)
    with client.ApiClient(loaded) as api_client:
        yield api_client


def _service(name: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"team": "a"}),
        spec=client.V1ServiceSpec(
            selector={"app": name}, ports=[client.V1ServicePort(port=8080, target_port=80)]
        ),
    )


def test_client_lists_watches_creates_patches_replaces_and_deletes(
    api: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_service(NS, _service("one"))
    assert created.metadata.uid and created.spec.ports[0].target_port == 80
    core.create_namespaced_service(NS, _service("two"))
    with pytest.raises(client.ApiException) as exists:
        core.create_namespaced_service(NS, _service("one"))
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"

    listed = core.list_namespaced_service(NS, label_selector="team=a", limit=1)
    assert [s.metadata.name for s in listed.items] == ["one"]
    rest = core.list_namespaced_service(
        NS, label_selector="team=a", _continue=listed.metadata._continue
    )
    assert [s.metadata.name for s in rest.items] == ["two"]
    assert (
        core.list_namespaced_service(NS, field_selector="metadata.name=two").items[0].metadata.name
        == "two"
    )

    # A watch from the list's version sees the patch, the replace and the delete, in order.
    since = core.list_namespaced_service(NS).metadata.resource_version
    seen: list[tuple[str, str, dict[str, str]]] = []

    def follow() -> None:
        w = watch.Watch()
        for ev in w.stream(
            core.list_namespaced_service, NS, resource_version=since, timeout_seconds=20
        ):
            seen.append((ev["type"], ev["object"].metadata.name, ev["object"].metadata.labels))
            if ev["type"] == "DELETED":
                w.stop()

    follower = threading.Thread(target=follow)
    follower.start()
    patched = core.patch_namespaced_service("one", NS, {"metadata": {"labels": {"tier": "x"}}})
    assert patched.metadata.labels == {"team": "a", "tier": "x"}
    stale = patched.metadata.resource_version
    patched.metadata.labels["tier"] = "y"
    replaced = core.replace_namespaced_service("one", NS, patched)
    assert replaced.metadata.labels["tier"] == "y"
    patched.metadata.resource_version = stale
    with pytest.raises(client.ApiException) as conflict:
        core.replace_namespaced_service("one", NS, patched)
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["reason"] == "Conflict"
    core.delete_namespaced_service("one", NS)
    follower.join(timeout=30)
    assert [(t, n) for t, n, _ in seen] == [
        ("MODIFIED", "one"),
        ("MODIFIED", "one"),
        ("DELETED", "one"),
    ]
    assert seen[0][2]["tier"] == "x" and seen[1][2]["tier"] == "y"
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_service("one", NS)
    assert gone.value.status == 404
    assert json.loads(gone.value.body)["message"] == 'services "one" not found'


def test_client_deployments_scale_and_validation(
    api: client.ApiClient, cluster: LocalCluster
) -> None:
    apps = client.AppsV1Api(api)
    manifest = yaml.safe_load((seed_dir() / "deployment.yaml").read_text())
    apps.create_namespaced_deployment(NS, manifest)
    apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 2}})
    assert apps.read_namespaced_deployment_scale(DEP, NS).spec.replicas == 2
    assert apps.read_namespaced_deployment(DEP, NS).spec.replicas == 2
    with pytest.raises(client.ApiException) as invalid:
        apps.patch_namespaced_deployment(DEP, NS, {"spec": {"replicas": "three"}})
    status: dict[str, Any] = json.loads(invalid.value.body)
    assert (invalid.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "spec.replicas"
    assert 'must be an integer >= 0, got "three"' in status["message"]
    core = client.CoreV1Api(api)
    config_map = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"a": "1"})
    core.create_namespaced_config_map(NS, config_map)
    core.patch_namespaced_config_map("settings", NS, {"data": {"b": "2"}})
    assert core.read_namespaced_config_map("settings", NS).data == {"a": "1", "b": "2"}
    core.delete_namespaced_config_map("settings", NS)
    assert core.list_namespaced_config_map(NS).items == []
    _server_side_apply_owns_fields(core)

    apps.delete_namespaced_deployment(DEP, NS, propagation_policy="Background")
    listed = apps.list_namespaced_deployment(NS)
    assert listed.items == []

    # A restarted master remembers objects, not the changes before it started: a watch
    # from before is 410 Gone, and the client lists again.
    assert cluster.master_proc is not None
    cluster.kill(cluster.master_proc, signal.SIGTERM)
    cluster.start_master("--no-lb")
    fresh = client.Configuration()
    config.load_kube_config(str(write_kubeconfig(cluster)), client_configuration=fresh)
    with client.ApiClient(fresh) as again:
        apps = client.AppsV1Api(again)
        with pytest.raises(client.ApiException) as too_old:
            stream = watch.Watch().stream(
                apps.list_namespaced_deployment,
                NS,
                resource_version=str(int(listed.metadata.resource_version) - 1),
                timeout_seconds=2,
            )
            list(stream)
        assert too_old.value.status == 410


APPLY = "application/apply-patch+yaml"


def _apply(
    core: client.CoreV1Api, manager: str | None, data: dict[str, str] | None, **kw: Any
) -> Any:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}}
    if data is not None:
        body["data"] = data
    if manager is not None:
        kw["field_manager"] = manager
    return core.patch_namespaced_config_map("owned", NS, body, _content_type=APPLY, **kw)


def _owners(core: client.CoreV1Api) -> dict[str, list[str]]:
    """manager -> the data keys it owns, from the object's managedFields."""
    obj = core.read_namespaced_config_map("owned", NS)
    return {
        e.manager: sorted(k[2:] for k in e.fields_v1.get("f:data", {}))
        for e in obj.metadata.managed_fields
    }


def _server_side_apply_owns_fields(core: client.CoreV1Api) -> None:
    with pytest.raises(client.ApiException) as anonymous:
        _apply(core, None, {"a": "1"})
    assert anonymous.value.status == 422
    assert "fieldManager: Required value" in json.loads(anonymous.value.body)["message"]
    # Apply creates; the applier owns exactly what it applied.
    assert _apply(core, "py-a", {"a": "1", "b": "2"}).data == {"a": "1", "b": "2"}
    assert _owners(core) == {"py-a": ["a", "b"]}
    # Another manager changing a's value: 409, one FieldManagerConflict cause naming both.
    with pytest.raises(client.ApiException) as conflict:
        _apply(core, "py-b", {"a": "9", "c": "3"})
    status = json.loads(conflict.value.body)
    assert (conflict.value.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "py-a": .data.a'
    assert status["details"]["causes"] == [
        {"type": "FieldManagerConflict", "message": 'conflict with "py-a"', "field": ".data.a"}
    ]
    assert core.read_namespaced_config_map("owned", NS).data == {"a": "1", "b": "2"}
    # A dry run answers what the apply would store, and stores nothing.
    dry = _apply(core, "py-b", {"a": "9", "c": "3"}, force=True, dry_run="All")
    assert dry.data == {"a": "9", "b": "2", "c": "3"}
    assert core.read_namespaced_config_map("owned", NS).data == {"a": "1", "b": "2"}
    assert _owners(core) == {"py-a": ["a", "b"]}
    # Forced, it takes a over; py-a then stops applying a and b: a (py-b's) stays, b goes.
    assert _apply(core, "py-b", {"a": "9", "c": "3"}, force=True).data["a"] == "9"
    assert _owners(core) == {"py-a": ["b"], "py-b": ["a", "c"]}
    assert _apply(core, "py-a", None).data == {"a": "9", "c": "3"}
    assert _owners(core) == {"py-b": ["a", "c"]}
    # A merge patch is an Update: its manager takes the field from the applier.
    core.patch_namespaced_config_map("owned", NS, {"data": {"c": "4"}}, field_manager="py-c")
    assert _owners(core) == {"py-b": ["a"], "py-c": ["c"]}
    core.delete_namespaced_config_map("owned", NS)


DEP = "my-web-app-deployment"


def _declared(obj: dict[str, Any]) -> dict[str, Any]:
    return {"labels": obj["metadata"]["labels"], "spec": obj["spec"]}


def test_the_same_manifest_through_pinnace_and_kubectl_is_the_same_object(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    k = Kubectl(wheel_kubectl(), write_kubeconfig(cluster), tmp_path)
    stored = {}
    for how in ("pinnace", "kubectl"):
        for name in ("deployment.yaml", "service.yaml"):
            path = str(seed_dir() / name)
            if how == "pinnace":
                cluster.cli("apply", "-f", path)
            else:
                k.run("create", "-f", path)
        stored[how] = {
            kind: _declared(cluster.get_json(kind, name))
            for kind, name in (("deployment", DEP), ("service", "my-web-app-service"))
        }
        cluster.cli("delete", "-f", str(seed_dir()))
    assert stored["pinnace"] == stored["kubectl"]


def test_only_admin_certificates_may_use_the_api(cluster: LocalCluster) -> None:
    cluster.start_master("--no-lb")
    cluster.start_agent("a")
    node = cluster.node("a")
    state = cluster.agent_state_dir(node)
    ca = str(cluster.workdir / "master-data" / "pki" / "ca.crt")
    url = f"{cluster.api_url}/api/v1/namespaces/default/pods"

    def call(cert: tuple[str, str] | None, at: str = url) -> tuple[int, dict[str, Any]]:
        ctx = ssl.create_default_context(cafile=ca)
        if cert is not None:
            ctx.load_cert_chain(*cert)
        try:
            with urllib.request.urlopen(at, context=ctx, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    wait_for("the agent's certificate", lambda: (state / "node.crt").exists())
    code, body = call(None)
    assert (code, body["reason"]) == (401, "Unauthorized")
    code, body = call((str(state / "node.crt"), str(state / "node.key")))
    assert (code, body["reason"]) == (403, "Forbidden")
    assert node in body["message"]
    # Nor may a node run commands in pods (exec is refused before any upgrade).
    exec_url = f"{url}/any/exec?command=true&stdout=true"
    code, body = call((str(state / "node.crt"), str(state / "node.key")), exec_url)
    assert (code, body["reason"]) == (403, "Forbidden")
    pki = cluster.workdir / "master-data" / "pki"
    code, body = call((str(pki / "admin.crt"), str(pki / "admin.key")))
    assert (code, body["kind"]) == (200, "PodList")
