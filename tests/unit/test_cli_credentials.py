"""Where the CLI finds its credentials, and the pinnace.conf format."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.files import write_atomic
from master.cli import config
from master.cli.config import CredentialsError, credentials_for, master_address, select
from master.pki.clientconfig import (
    ClientConfig,
    ConfigError,
    parse_client_config,
    read_client_config,
    render_client_config,
)

PEM = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("PINNACE_CONFIG", "PINNACE_MASTER", "PINNACE_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    select(None, False)
    yield
    select(None, False)


def _write(path: Path, server: str = "10.0.0.1:7400") -> Path:
    write_atomic(path, render_client_config(ClientConfig(server, PEM, PEM, KEY)).encode())
    return path


def test_the_config_round_trips_and_is_private(tmp_path: Path) -> None:
    path = _write(tmp_path / "pinnace.conf")

    cfg = read_client_config(path)

    assert cfg == ClientConfig("10.0.0.1:7400", PEM, PEM, KEY)
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not YAML"),
        ("- a\n- b\n", "kind: Config"),
        ("kind: Config\n", "server is missing"),
        (
            "kind: Config\nserver: x:1\ncertificate-authority-data: nope\n"
            "client-certificate-data: nope\nclient-key-data: nope\n",
            "not PEM",
        ),
    ],
)
def test_a_broken_config_is_named_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"^my.conf: .*{reason}"):
        parse_client_config(text, "my.conf")


def test_the_flag_beats_the_environment_beats_the_home_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _write(Path(config.home_config()), "home:1")
    env = _write(tmp_path / "env.conf", "env:1")
    flag = _write(tmp_path / "flag.conf", "flag:1")

    assert credentials_for("x:1").source == str(home)
    monkeypatch.setenv("PINNACE_CONFIG", str(env))
    assert credentials_for("x:1").source == str(env)
    assert master_address(None) == "env:1"
    select(str(flag), False)
    assert credentials_for("x:1").source == str(flag)
    assert master_address(None) == "flag:1"
    assert master_address("given:1") == "given:1"


def test_a_local_master_s_own_config_is_found_without_setup() -> None:
    own = _write(Path(config.master_data_config()), "127.0.0.1:7400")

    assert credentials_for("127.0.0.1:7400").source == str(own)
    assert credentials_for("10.1.1.1:7400").config is None


def test_a_named_config_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    select(str(tmp_path / "nope.conf"), False)

    with pytest.raises(CredentialsError, match=r"nope\.conf does not exist"):
        credentials_for("127.0.0.1:7400")


def test_insecure_is_for_loopback_only() -> None:
    select(None, True)

    assert credentials_for("127.0.0.1:7400").insecure
    assert credentials_for("localhost:7400").insecure
    with pytest.raises(CredentialsError, match="only to a master on this machine"):
        credentials_for("10.0.0.1:7400")
