"""Issue 11, the environment, on real Docker: ConfigMaps and Secrets used through `env`,
`envFrom` and `$(VAR)`, checked inside the running container (`docker exec env`); a pod
whose ConfigMap is missing waits in CreateContainerConfigError and starts when it
appears; a ConfigMap change restarts nothing, while a restarted container sees it; and
the Secret's value is found in no file of the master's data dir or the agent's state dir,
in no log, table or event.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.support import exec_output

pytestmark = pytest.mark.integration

VALUE = "Pa55-w0rd-4711-never-shown"

CONFIG = """apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{GREETING: {greeting}, LEVEL: debug}}
"""
SECRET = f"""apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: {VALUE}}}
"""
APP = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: pinnace/httpd:latest
        command: ["/bin/sh", "-c"]
        args: ["echo '$(CFG_GREETING)' '$$(CFG_GREETING)'; exec sleep 3600"]
        envFrom:
        - configMapRef: {name: settings}
          prefix: CFG_
        env:
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: creds, key: password}}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: MESSAGE
          value: "$(CFG_GREETING), $(POD_NAME)! $$(LITERAL)"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: waiter}
spec:
  replicas: 1
  selector: {matchLabels: {app: waiter}}
  template:
    metadata: {labels: {app: waiter}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: pinnace/httpd:latest
        command: ["sleep", "3600"]
        env:
        - name: LATE
          valueFrom: {configMapKeyRef: {name: late, key: value}}
"""


def _pod(cluster: LocalCluster, app: str) -> dict[str, Any] | None:
    return next((p for p in cluster.pods() if p["metadata"]["labels"]["app"] == app), None)


def _running(cluster: LocalCluster, app: str) -> Any:
    def check() -> Any:
        pod = _pod(cluster, app)
        if pod is None or pod["status"].get("phase") != "Running":
            return None
        return next(
            (c for c in cluster.containers() if c.labels["pinnace.pod"] == pod["metadata"]["name"]),
            None,
        )

    return wait_for(f"{app} running", check, timeout=60)


def _exec(container: Any, *cmd: str) -> str:
    code, out = exec_output(container, list(cmd))
    assert code == 0, out
    return out.decode()


def _env(container: Any) -> dict[str, str]:
    lines = _exec(container, "env").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _holding(root: Path, needles: list[bytes]) -> list[str]:
    return [
        str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)
    ]


def test_config_and_secrets_reach_the_container_environment_and_nowhere_else(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    node = cluster.start_agent("n1")
    files = {"config.yaml": CONFIG.format(greeting="hello"), "secret.yaml": SECRET}
    files["app.yaml"] = APP
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    cluster.cli("apply", "-f", str(tmp_path))

    web = _running(cluster, "web")
    env = _env(web)
    pod_name = web.labels["pinnace.pod"]
    assert env["CFG_GREETING"] == "hello" and env["CFG_LEVEL"] == "debug"
    assert env["PASSWORD"] == VALUE
    assert env["POD_NAME"] == pod_name
    assert env["MESSAGE"] == f"hello, {pod_name}! $(LITERAL)"
    # args were expanded before the shell saw them: $$ left a literal $(...) for it.
    wait_for("the args' output", lambda: web.logs())
    assert web.logs() == b"hello $(CFG_GREETING)\n"

    waiter = wait_for(
        "the waiter to wait for its ConfigMap",
        lambda: (
            (p := _pod(cluster, "waiter"))
            and p["status"].get("containerStatuses")
            and (w := p["status"]["containerStatuses"][0]["state"].get("waiting"))
            # ContainerCreating: the agent has not got to it yet (no verdict)
            and w.get("reason") != "ContainerCreating"
            and w
        ),
    )
    assert waiter == {
        "reason": "CreateContainerConfigError",
        "message": 'configmap "late" not found',
    }
    assert "CreateContainerConfigError" in cluster.cli("get", "pods").stdout
    (tmp_path / "late.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\ndata: {value: arrived}\n"
    )
    cluster.cli("apply", "-f", str(tmp_path / "late.yaml"))
    assert _env(_running(cluster, "waiter"))["LATE"] == "arrived"

    # A changed ConfigMap restarts nothing; a container restarted afterwards sees it.
    (tmp_path / "config.yaml").write_text(CONFIG.format(greeting="bonjour"))
    cluster.cli("apply", "-f", str(tmp_path / "config.yaml"))
    web.kill()
    restarted = wait_for(
        "the killed container to be restarted",
        lambda: next(
            (
                c
                for c in cluster.containers()
                if c.labels["pinnace.pod"] == pod_name and c.id != web.id
            ),
            None,
        ),
    )
    assert _env(restarted)["CFG_GREETING"] == "bonjour"
    restarts = wait_for(
        "the restart to be reported",
        lambda: (p := _pod(cluster, "web")) and p["status"]["containerStatuses"][0]["restartCount"],
    )
    assert restarts == 1  # the kill only: the ConfigMap change itself restarted nothing

    needles = [VALUE.encode(), base64.b64encode(VALUE.encode())]
    assert _holding(cluster.workdir / "master-data", needles) == []
    assert _holding(cluster.agent_state_dir(node), needles) == []
    for log in cluster.workdir.glob("*.log"):
        assert not any(n in log.read_bytes() for n in needles), log
    shown = cluster.cli("get", "secrets").stdout + cluster.cli("get", "events").stdout
    shown += cluster.cli("get", "deployment", "web", "-o", "yaml").stdout
    assert not any(n.decode() in shown for n in needles)
