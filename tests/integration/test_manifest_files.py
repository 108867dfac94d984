"""Issue 11, whole files and the silent differences, through the real CLI and master.

Folders are walked as kubectl walks them (-R for subfolders); every invalid document
of an apply is reported at once and nothing is stored; an empty apply is an error;
`delete -f` needs only kind and name. With a real agent and HAProxy: an image with
the default pull policy of `:latest` (Always) runs from the node when no registry
answers, with a PullFallback event; a headless Service gets no load balancer and
lists its endpoints.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.support import free_port, require_haproxy

pytestmark = pytest.mark.integration

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: httpd
        image: pinnace/httpd:latest
        ports: [{{containerPort: 80}}]
"""

SERVICE = """apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {app}}}
  ports: [{{port: {port}, targetPort: 80}}]
"""


def _names(cluster: LocalCluster, kind: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in cluster.get_json(kind)["items"])


def test_folders_errors_empty_input_and_delete_by_name(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--insecure", "--no-lb")
    app = tmp_path / "app"
    (app / "more").mkdir(parents=True)
    (app / "a.yaml").write_text(DEPLOYMENT.format(name="web"))
    (app / "b.yml").write_text(SERVICE.format(name="web", app="web", port=80))
    (app / "notes.txt").write_text("not a manifest")
    (app / "more" / "c.json").write_text(
        '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "extra"},'
        ' "spec": {"selector": {"app": "web"}, "ports": [{"port": 81}]}}'
    )

    flat = cluster.cli("apply", "-f", str(app))
    assert _names(cluster, "services") == ["web"]
    deep = cluster.cli("apply", "-R", "-f", str(app))
    assert _names(cluster, "services") == ["extra", "web"]
    assert "deployment.apps/web created" in flat.stdout
    assert "service/extra created" in deep.stdout and "service/web unchanged" in deep.stdout

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "1.yaml").write_text(
        DEPLOYMENT.format(name="api").replace("replicas: 1", "replicas: three")
    )
    (bad / "2.yaml").write_text(
        SERVICE.format(name="api", app="api", port=80)
        + "---\n"
        + DEPLOYMENT.format(name="good")
        + "---\n"
        + SERVICE.format(name="api2", app="api", port=0)
    )
    refused = cluster.cli("apply", "-f", str(bad), check=False)
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f'error: {bad}/1.yaml: document 1: spec.replicas: must be an integer >= 0, got "three"',
        f"error: {bad}/2.yaml: document 3: spec.ports[0].port: must be an integer from 1 to "
        "65535, got 0",
    ]
    assert _names(cluster, "deployments") == ["web"]  # nothing of the bad apply stored

    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n---\n")
    for args, stdin in ((("-f", str(empty)), None), (("-f", "-"), b"")):
        result = cluster.cli("apply", *args, check=False, stdin=stdin)
        assert (result.returncode, result.stderr) == (1, "error: no objects passed to apply\n")

    # An older copy of the file, with a field this version no longer knows: still deletable.
    (tmp_path / "old.yaml").write_text(
        DEPLOYMENT.format(name="web").replace("replicas: 1", "replicas: 1\n  paused: maybe")
    )
    deleted = cluster.cli("delete", "-f", str(tmp_path / "old.yaml"))
    assert deleted.stdout == 'deployment.apps "web" deleted\n'
    assert _names(cluster, "deployments") == []


def test_latest_image_falls_back_to_the_node_and_headless_service_has_no_balancer(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    require_haproxy()
    port = free_port()
    cluster.start_master("--lb-port-offset", str(port - 80))
    cluster.start_agent("n1")
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        DEPLOYMENT.format(name="web")
        + "---\n"
        + SERVICE.format(name="web-headless", app="web", port=80).replace(
            "spec:\n", "spec:\n  clusterIP: None\n"
        )
    )
    cluster.cli("apply", "-f", str(manifest))

    (dep,) = cluster.get_json("deployments")["items"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    wait_for(
        "the pod running from the image on the node",
        lambda: [p for p in cluster.pods() if p["status"].get("phase") == "Running"],
    )
    events = wait_for(
        "a PullFallback event",
        lambda: [
            e for e in cluster.get_json("events")["items"] if e.get("reason") == "PullFallback"
        ],
    )
    assert "could not pull pinnace/httpd:latest" in events[0]["message"]
    assert "using the image already on the node" in events[0]["message"]

    endpoints = wait_for(
        "the headless service's endpoint",
        lambda: [
            a
            for s in cluster.get_json("endpoints", "web-headless")["subsets"]
            for a in s.get("addresses", [])
        ],
    )
    assert endpoints[0]["ip"] == "127.0.0.1"
    table = cluster.cli("get", "svc", "web-headless").stdout
    assert re.search(r"web-headless\s+ClusterIP\s+None\s+<none>\s+80/TCP", table)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # HAProxy has no listener for a headless service
