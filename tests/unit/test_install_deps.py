"""compose/install-deps.sh, the one package list of `make demo`, `make test` and .ci/run.

The packages are installed on the machines these tests run on, and nothing can be uninstalled
to try the other paths, so the script runs here against fake `dpkg-query`, `apt-get`, `sudo`,
`id`, `docker` and `python3` on PATH (each writes what it was asked to a log). Proves: a
machine with everything installs nothing and prints nothing; root installs with one update and
one install of exactly what is missing; a user with sudo goes through `sudo -n`; a user with
neither gets one sentence naming the command; the conditional packages follow what the
machine lacks; --dry-run runs nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO

SCRIPT = REPO / "compose" / "install-deps.sh"
ALWAYS = [
    "haproxy",
    "busybox-static",
    "debootstrap",
    "ca-certificates",
    "make",
    "curl",
    "etcd-server",
    "dnsmasq-base",
    "iproute2",
    "mount",
    "e2fsprogs",
    "nftables",
    "conntrack",
]
EVERYTHING = [*ALWAYS, "python3", "docker-compose", "python3-venv"]
REAL_TOOLS = ("dirname", "grep", "mktemp", "rm", "env", "cat")

FAKES = {
    # the package is the last argument
    "dpkg-query": 'for p; do :; done; [[ " $INSTALLED " == *" $p "* ]] && '
    'printf "install ok installed"; exit 0',
    "apt-get": 'echo "apt-get $*" >>"$LOG"',
    "id": 'echo "$FAKE_UID"',
    "sudo": 'echo "sudo $*" >>"$LOG"; [[ $1 == -n ]] || exit 1; shift; '
    '[[ $SUDO_OK == 1 ]] || exit 1; [[ $1 == true ]] && exit 0; exec "$@"',
    "docker": '[[ "$1 $2" == "compose version" && $COMPOSE_V2 == 1 ]]',
    "python3": "[[ $VENV_OK == 1 ]]",
}


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    stdout: str
    stderr: str
    calls: list[str]


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    """A copy of the script in a bare checkout (no .venv) and a PATH of fakes and basic tools."""
    (tmp_path / "repo" / "compose").mkdir(parents=True)
    shutil.copy(SCRIPT, tmp_path / "repo" / "compose" / "install-deps.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    for tool in REAL_TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    return tmp_path


def run(
    machine: Path,
    *args: str,
    installed: list[str],
    uid: int = 0,
    sudo_ok: bool = False,
    compose_v2: bool = False,
    venv_ok: bool = True,
) -> Run:
    log = machine / "calls.log"
    log.write_text("")
    env = {
        "PATH": str(machine / "bin"),
        "TMPDIR": str(machine),
        "LOG": str(log),
        "INSTALLED": " ".join(installed),
        "FAKE_UID": str(uid),
        "SUDO_OK": "1" if sudo_ok else "0",
        "COMPOSE_V2": "1" if compose_v2 else "0",
        "VENV_OK": "1" if venv_ok else "0",
    }
    bash = shutil.which("bash")
    assert bash is not None
    p = subprocess.run(
        [bash, str(machine / "repo" / "compose" / "install-deps.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return Run(p.returncode, p.stdout, p.stderr, log.read_text().splitlines())


def install_line(*packages: str) -> str:
    return "apt-get install -y -q --no-install-recommends " + " ".join(packages)


def test_a_machine_with_everything_installs_nothing_and_says_nothing(machine: Path) -> None:
    result = run(machine, installed=EVERYTHING)

    assert (result.code, result.stdout, result.stderr, result.calls) == (0, "", "", [])


def test_root_updates_once_and_installs_exactly_what_is_missing(machine: Path) -> None:
    have = [p for p in EVERYTHING if p not in ("haproxy", "debootstrap")]

    result = run(machine, installed=have)

    assert result.code == 0, result.stderr
    assert result.calls == ["apt-get update -q", install_line("haproxy", "debootstrap")]
    assert result.stdout == "install-deps: installing haproxy debootstrap\n"


def test_a_user_with_sudo_installs_through_sudo_without_a_prompt(machine: Path) -> None:
    have = [p for p in EVERYTHING if p != "busybox-static"]

    result = run(machine, installed=have, uid=1000, sudo_ok=True)

    assert result.code == 0, result.stderr
    assert result.calls == [
        "sudo -n true",
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -q",
        "apt-get update -q",
        f"sudo -n env DEBIAN_FRONTEND=noninteractive {install_line('busybox-static')}",
        install_line("busybox-static"),
    ]
    assert "(with sudo)" in result.stdout


def test_a_user_without_root_or_sudo_is_told_the_exact_command(machine: Path) -> None:
    have = [p for p in EVERYTHING if p not in ("haproxy", "make")]

    result = run(machine, installed=have, uid=1000, sudo_ok=False)

    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1  # one sentence
    assert f"sudo {install_line('haproxy', 'make')}" in result.stderr
    assert [c for c in result.calls if "apt-get" in c] == []


def test_compose_and_venv_packages_follow_what_the_machine_lacks(machine: Path) -> None:
    bare = run(machine, installed=[*ALWAYS, "python3"], compose_v2=False, venv_ok=False)
    plugin = run(machine, installed=[*ALWAYS, "python3"], compose_v2=True, venv_ok=True)

    assert bare.calls[-1] == install_line("docker-compose", "python3-venv")
    assert plugin.calls == []


def test_dry_run_prints_the_commands_and_runs_none(machine: Path) -> None:
    result = run(machine, "--dry-run", installed=[p for p in EVERYTHING if p != "curl"])

    assert result.code == 0, result.stderr
    assert result.calls == []
    assert f"would run: env DEBIAN_FRONTEND=noninteractive {install_line('curl')}" in result.stdout


def test_the_makefile_and_ci_use_this_script_and_hold_no_package_list() -> None:
    makefile = (REPO / "Makefile").read_text()
    ci = (REPO / ".ci" / "run").read_text()

    prerequisites = {
        line.split(":")[0]: line.split(":", 1)[1].split()
        for line in makefile.splitlines()
        if line and not line.startswith(("\t", "#", ".", "$")) and ":" in line
    }
    assert "deps" in prerequisites["demo"]
    assert "deps" in prerequisites["test"]
    assert "compose/install-deps.sh" in makefile
    assert "compose/install-deps.sh" in ci
    for text in (makefile, ci):
        assert "apt-get install" not in text
        assert "busybox-static" not in text


def test_the_script_is_executable() -> None:
    assert os.access(SCRIPT, os.X_OK)
