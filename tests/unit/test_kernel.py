"""The shared kernel: one quantity parser (Kubernetes' rounding), names, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kernel.bootstrap import ANONYMOUS_SEED, anonymous_secret
from kernel.clock import FakeClock
from kernel.files import write_atomic
from kernel.names import JOIN_TOKEN, is_node_name
from kernel.quantity import QuantityError, parse_quantity_cpu, parse_quantity_memory


@pytest.mark.parametrize(
    ("text", "millis"),
    [("0.0005", 1), ("0.0015", 2), ("0.001", 1), ("500u", 1), ("1n", 1), ("2", 2000)],
)
def test_cpu_rounds_up_to_the_next_millicore_as_kubernetes_does(text: str, millis: int) -> None:
    # Kubernetes' MilliValue rounds up: a request of 0.0005 CPU asks for 1m, never for 0m.
    assert parse_quantity_cpu(text) == millis


def test_memory_rounds_up_to_the_next_byte() -> None:
    assert parse_quantity_memory("1500m") == 2
    assert parse_quantity_memory("0.5") == 1


@pytest.mark.parametrize("text", ["1e3m", "1Kib", "1.2.3", "--1", "1 m"])
def test_only_kubernetes_grammar_is_a_quantity(text: str) -> None:
    # One suffix or one exponent, not both (Kubernetes refuses "1e3m" too).
    with pytest.raises(QuantityError, match="must be a quantity"):
        parse_quantity_cpu(text)


def test_a_non_scalar_is_named_by_kind() -> None:
    with pytest.raises(QuantityError, match="got a dict"):
        parse_quantity_memory({"a": 1})


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("node-1", True),
        ("a.b-c.d", True),
        ("x" * 253, True),
        ("x" * 254, False),
        ("Node1", False),
        ("-node", False),
        ("node-", False),
        ("a..b", False),
        ("", False),
        ("node 1", False),
        ("node\n", False),
    ],
)
def test_node_names_are_dns_1123_subdomains(name: str, ok: bool) -> None:
    assert is_node_name(name) is ok


def test_the_join_token_form() -> None:
    token = "pinnace1.abcdefgh." + "a" * 24 + "." + "B_-" + "c" * 40
    match = JOIN_TOKEN.fullmatch(token)
    assert match is not None and match.group(1) == "abcdefgh"
    assert JOIN_TOKEN.fullmatch(token[:-1]) is None
    assert JOIN_TOKEN.fullmatch("pinnace2" + token[8:]) is None


def test_the_anonymous_secret_is_derived_from_the_public_seed() -> None:
    assert ANONYMOUS_SEED.startswith(b"pinnace anonymous bootstrap identity v1")
    assert anonymous_secret() == anonymous_secret() > 0
    assert anonymous_secret().bit_length() <= 256


def test_atomic_write_sets_the_mode_from_the_first_byte_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "key.pem"
    write_atomic(target, b"one")
    write_atomic(target, b"two", 0o640)

    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["key.pem"]


def test_a_failed_atomic_write_leaves_no_trace(tmp_path: Path) -> None:
    target = tmp_path / "config"
    write_atomic(target, b"old")
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # root ignores the mode: make the rename fail instead
            (tmp_path / ".config.tmp").mkdir()
            (tmp_path / ".config.tmp" / "x").write_text("")
        with pytest.raises(OSError):
            write_atomic(target, b"new")
    finally:
        os.chmod(tmp_path, 0o700)
    assert target.read_bytes() == b"old"


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock()
    wall, mono = clock.now(), clock.monotonic()
    clock.advance(2.5)
    assert (clock.now() - wall, clock.monotonic() - mono) == (2.5, 2.5)
