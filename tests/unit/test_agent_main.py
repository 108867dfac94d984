"""Flags: defaults, env fallback, and one-sentence errors with exit status 2."""

from __future__ import annotations

import pytest

from agent.main import resolve


def test_defaults_and_env_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINNACE_MASTER", "10.0.0.1:7401")

    args, resources = resolve(["--name", "n1", "--capacity-cpu", "2", "--capacity-memory", "1Gi"])

    assert args.master == "10.0.0.1:7401"
    assert args.advertise_address == "127.0.0.1"
    assert resources.allocatable.cpu_millis == 1900
    assert resources.allocatable.memory_bytes == 2**30 - 256 * 2**20


def test_flag_beats_env_and_labels_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINNACE_MASTER", "10.0.0.1:7401")

    args, _ = resolve(["--master", "127.0.0.1:9", "--name", "n", "--labels", "zone=a, disk=ssd"])

    assert args.master == "127.0.0.1:9"
    assert args.labels == {"zone": "a", "disk": "ssd"}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--master", "nohost"], "--master"),
        (["--advertise-address", "not-an-ip"], "--advertise-address"),
        (["--labels", "novalue"], "--labels"),
        (["--reserve-memory", "much"], "--reserve-memory"),
        (["--fence-after", "-1"], "--fence-after"),
        (["--bogus"], "unrecognized"),
    ],
)
def test_errors_are_one_sentence_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        resolve(["--name", "n", *argv])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_pod_network_is_off_by_default_and_validated(capsys: pytest.CaptureFixture[str]) -> None:
    default, _ = resolve(["--name", "n"])
    on, _ = resolve(["--name", "n", "--pod-network", "pinnace-demo_pods.1"])

    with pytest.raises(SystemExit) as exited:
        resolve(["--name", "n", "--pod-network", "no spaces"])

    assert default.pod_network == ""
    assert on.pod_network == "pinnace-demo_pods.1"
    assert exited.value.code == 2
    assert "--pod-network" in capsys.readouterr().err


def test_pod_sandboxes_are_for_multi_container_pods_by_default() -> None:
    default, _ = resolve(["--name", "n"])
    asked, _ = resolve(["--name", "n", "--pod-sandbox"])  # the old opt-in: every pod
    every, _ = resolve(["--name", "n", "--pod-sandbox", "all"])
    multi, _ = resolve(["--name", "n", "--pod-sandbox=multi"])
    off, _ = resolve(["--name", "n", "--no-pod-sandbox"])

    assert (default.pod_sandbox, asked.pod_sandbox, every.pod_sandbox) == ("multi", "all", "all")
    assert (multi.pod_sandbox, off.pod_sandbox) == ("multi", "none")


def test_standby_sandboxes_are_on_by_default_and_can_be_turned_off() -> None:
    default, _ = resolve(["--name", "n"])
    off, _ = resolve(["--name", "n", "--no-standby-sandbox"])
    asked, _ = resolve(["--name", "n", "--standby-sandbox"])  # the old opt-in still parses

    assert (default.standby_sandbox, off.standby_sandbox, asked.standby_sandbox) == (
        True,
        False,
        True,
    )
