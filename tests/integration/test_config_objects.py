"""Issue 11, ConfigMaps, Secrets and ServiceAccounts through the real CLI and master.

kubectl's tables (`get cm`: NAME DATA AGE; `get secret`: NAME TYPE DATA AGE; `get sa`),
the `default` ServiceAccount, and a Secret's value found nowhere in plain text: not in
tables, events or the master's log, and not in any file of the data dir (SQLite keeps
it AES-GCM sealed); after a master restart the value comes back in `-o json`.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.integration.cluster import LocalCluster

pytestmark = pytest.mark.integration

VALUE = "s3cr3t-Value-4711"
MANIFEST = f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{mode: prod, level: debug}}
---
apiVersion: v1
kind: Secret
metadata: {{name: db-creds}}
type: kubernetes.io/basic-auth
stringData: {{username: app, password: {VALUE}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: robot}}
"""


def _files_hold(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_config_objects_are_listed_like_kubectl_and_secret_values_stay_hidden(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--insecure", "--no-lb")
    (tmp_path / "app.yaml").write_text(MANIFEST)

    out = cluster.cli("apply", "-f", str(tmp_path / "app.yaml")).stdout
    assert out.splitlines() == [
        "configmap/settings created",
        "secret/db-creds created",
        "serviceaccount/robot created",
    ]

    cm = cluster.cli("get", "cm").stdout.splitlines()
    secrets = cluster.cli("get", "secrets").stdout.splitlines()
    accounts = cluster.cli("get", "sa").stdout.splitlines()
    assert re.split(r"\s{2,}", cm[0]) == ["NAME", "DATA", "AGE"]
    assert re.match(r"settings\s+2\s+\d+s$", cm[1])
    assert re.split(r"\s{2,}", secrets[0]) == ["NAME", "TYPE", "DATA", "AGE"]
    assert re.match(r"db-creds\s+kubernetes\.io/basic-auth\s+2\s+\d+s$", secrets[1])
    assert [line.split()[0] for line in accounts[1:]] == ["default", "robot"]

    encoded = base64.b64encode(VALUE.encode())
    shown = "".join(
        cluster.cli(*args).stdout
        for args in (("get", "secrets", "-o", "wide"), ("get", "events"), ("get", "sa"))
    )
    data_dir = cluster.workdir / "master-data"
    for needle in (VALUE.encode(), encoded):
        assert needle.decode() not in shown
        assert _files_hold(data_dir, needle) == []
        assert needle not in (cluster.workdir / "master.log").read_bytes()

    cluster.kill_master()
    cluster.start_master("--insecure", "--no-lb")
    secret = cluster.get_json("secret", "db-creds")
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert base64.b64decode(secret["data"]["password"]).decode() == VALUE
    assert cluster.cli("apply", "-f", str(tmp_path / "app.yaml")).stdout.splitlines() == [
        "configmap/settings unchanged",
        "secret/db-creds unchanged",
        "serviceaccount/robot unchanged",
    ]
    assert cluster.cli("delete", "secret", "db-creds").stdout == 'secret "db-creds" deleted\n'
