"""`pinnace apply` against a real master, through its own HTTP/2 call (master/cli/h2_client.py)
and without grpcio: TLS as the master serves it and --insecure, the master's own sentences,
credentials of another cluster, and --master with a dead address first."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from master.pki.clientconfig import read_client_config
from tests.integration.cluster import REPO, LocalCluster
from tests.pki_support import foreign_admin_config, write_client_config

CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n"
# main() as `pinnace` runs it, then the modules it loaded on the last line of stdout.
PROBE = (
    "import json, sys\n"
    "from master.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'grpc')))\n"
    "sys.exit(code)\n"
)


def _apply(
    cluster: LocalCluster, master: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`pinnace --master MASTER [--insecure] ARGS` and the grpc modules it loaded."""
    insecure = ["--insecure"] if cluster.insecure else []
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "--master", master, *insecure, *args],
        capture_output=True,
        text=True,
        env=env or cluster.env,
        cwd=REPO,
        timeout=60,
    )
    *out, loaded = result.stdout.splitlines() or [""]
    result.stdout = "".join(f"{line}\n" for line in out)
    return result, json.loads(loaded) if loaded.startswith("[") else ["<no probe line>"]


def _manifest(tmp_path: Path, name: str, text: str | None = None) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text if text is not None else CONFIG_MAP.format(name=name))
    return str(path)


def test_apply_reaches_a_tls_master_without_grpcio(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.start_master("--no-lb")
    address = cluster.master_address

    first, loaded = _apply(cluster, address, "apply", "-f", _manifest(tmp_path, "one"))
    again, _ = _apply(cluster, address, "apply", "-f", _manifest(tmp_path, "one"))

    assert first.returncode == 0, first.stderr
    assert first.stdout == "configmap/one created\n"
    assert again.stdout == "configmap/one unchanged\n"
    assert loaded == []
    assert cluster.get_json("configmaps", "one")["data"] == {"a": "b"}

    # The master's own sentence for an invalid manifest, nothing stored.
    bad = _manifest(
        tmp_path,
        "bad",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: three\n",
    )
    refused, _ = _apply(cluster, address, "apply", "-f", bad)
    assert refused.returncode == 1
    assert refused.stderr == (
        f'error: {bad}: document 1: spec.replicas: must be an integer >= 0, got "three"\n'
    )

    # A dead address first: the call passes on to the live master.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{held.getsockname()[1]}"
        passed, _ = _apply(cluster, f"{dead},{address}", "apply", "-f", _manifest(tmp_path, "two"))
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout == "configmap/two created\n"


def test_apply_with_another_clusters_credentials_fails_as_tls(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    config = foreign_admin_config(cluster.master_address)
    foreign = write_client_config(tmp_path / "foreign.conf", config)
    # Only the client certificate foreign: the master's verifies, ours is refused by it.
    real = read_client_config(cluster.config_path)
    own_ca = real._replace(cert_pem=config.cert_pem, key_pem=config.key_pem)
    half = write_client_config(tmp_path / "half.conf", own_ca)

    for path in (foreign, half):
        env = {**cluster.env, "PINNACE_CONFIG": str(path)}
        wrong, loaded = _apply(
            cluster, cluster.master_address, "apply", "-f", _manifest(tmp_path, "x"), env=env
        )
        assert wrong.returncode == 1
        assert wrong.stderr.startswith(
            f"cannot establish TLS with the pinnace master at {cluster.master_address}: "
        ), wrong.stderr
        assert loaded == []
    assert cluster.cli("get", "configmaps", "x", check=False).returncode == 1


def test_apply_reaches_an_insecure_master_without_grpcio(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb", "--insecure")

    done, loaded = _apply(cluster, cluster.master_address, "apply", "-f", _manifest(tmp_path, "p"))

    assert done.returncode == 0, done.stderr
    assert done.stdout == "configmap/p created\n"
    assert loaded == []
    assert cluster.get_json("configmaps", "p")["data"] == {"a": "b"}
