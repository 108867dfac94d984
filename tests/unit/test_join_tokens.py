"""Join tokens (format, checks, pruning, durations) and node-name bindings, as pure decisions."""

from __future__ import annotations

import itertools

import pytest

from agent.join import JoinError
from agent.join import parse_token as agent_parse_token
from master.pki.identities import NodeBinding, join_refusal, session_refusal
from master.pki.tokens import (
    KEEP_DEAD,
    TokenFormatError,
    TokenRecord,
    check_token,
    format_duration,
    generate_token,
    parse_duration,
    parse_token,
    parse_wire_token,
    prune,
)

CA_HASH = "A" * 43
NOW = 1_700_000_000.0


def test_a_generated_token_reads_back_on_both_sides() -> None:
    token, record = generate_token(CA_HASH, NOW, 3600, "ci")
    text = str(token)

    assert text.startswith("pinnace1.") and text.endswith("." + CA_HASH)
    assert parse_token(text) == token
    agent_view = agent_parse_token(text)
    assert (agent_view.id, agent_view.secret, agent_view.ca_hash) == (
        token.id,
        token.secret,
        CA_HASH,
    )
    assert parse_wire_token(token.wire) == (token.id, token.secret)
    assert token.secret not in repr(record.to_json())
    assert record.expires_at == NOW + 3600 and record.description == "ci"


def test_tokens_are_random() -> None:
    tokens = {generate_token(CA_HASH, NOW, 0)[0].wire for _ in range(50)}
    assert len(tokens) == 50


@pytest.mark.parametrize(
    "text",
    [
        "",
        "pinnace1.abc.def.ghi",
        "pinnace2.abcdefgh.abcdefghijklmnopqrstuvwx." + CA_HASH,
        "pinnace1.ABCDEFGH.abcdefghijklmnopqrstuvwx." + CA_HASH,
        "pinnace1.abcdefgh.abcdefghijklmnopqrstuvwx." + CA_HASH[:-1],
        "abcdefgh.abcdefghijklmnopqrstuvwx",
    ],
)
def test_malformed_tokens_are_refused_by_both_sides(text: str) -> None:
    with pytest.raises(TokenFormatError, match="malformed"):
        parse_token(text)
    with pytest.raises(JoinError, match="malformed"):
        agent_parse_token(text)


def test_the_wire_form_is_checked_strictly() -> None:
    assert parse_wire_token("abcdefgh.abcdefghijklmnopqrstuvwx") is not None
    assert parse_wire_token("abcdefgh.abcdefghijklmnopqrstuvw") is None
    assert parse_wire_token("abcdefgh.abcdefghijklmnopqrstuvwx\x00") is None


def test_check_token_says_why_a_token_cannot_join() -> None:
    token, record = generate_token(CA_HASH, NOW, 60)

    assert check_token(record, token.secret, NOW + 59) == ""
    assert "not valid" in check_token(None, token.secret, NOW)
    assert "not valid" in check_token(record, "x" * 24, NOW)
    assert "has expired" in check_token(record, token.secret, NOW + 60)
    revoked = TokenRecord(**{**record.to_json(), "revoked_at": NOW + 1})
    assert "was revoked" in check_token(revoked, token.secret, NOW + 2)


def test_a_token_with_ttl_zero_never_expires() -> None:
    token, record = generate_token(CA_HASH, NOW, 0)
    assert record.expires_at == 0
    assert check_token(record, token.secret, NOW + 10 * 365 * 86400) == ""


def test_dead_tokens_are_pruned_a_day_after_they_died() -> None:
    ids = (f"t{i}" for i in itertools.count())

    def rec(**kw: float) -> TokenRecord:
        return TokenRecord(id=next(ids), secret_sha256="", created_at=NOW, **kw)  # type: ignore[arg-type]

    live, forever = rec(expires_at=NOW + 10), rec()
    just_expired, long_expired = rec(expires_at=NOW - 10), rec(expires_at=NOW - KEEP_DEAD - 1)
    long_revoked = rec(revoked_at=NOW - KEEP_DEAD - 1)
    records = {r.id: r for r in (live, forever, just_expired, long_expired, long_revoked)}

    kept = prune(records, NOW)

    assert set(kept) == {live.id, forever.id, just_expired.id}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("90d", 90 * 86400), ("1h30m", 5400), ("45s", 45), ("0", 0), ("1.5", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "10x", "-5", "5h-", "nan", "1h 2m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_uses_the_largest_unit() -> None:
    assert [format_duration(s) for s in (5, 90, 7200, 86400 * 3)] == ["5s", "1m", "2h", "3d"]


def test_a_joined_name_is_refused_to_another_key_while_the_node_is_ready() -> None:
    binding = NodeBinding("web-1", "a" * 64, NOW)

    refusal = join_refusal(binding, "b" * 64, node_ready=True)

    assert "already taken by a connected agent" in refusal
    assert "pinnace delete node web-1" in refusal


def test_a_name_can_be_taken_over_once_its_node_is_gone_or_by_its_own_key() -> None:
    binding = NodeBinding("web-1", "a" * 64, NOW)

    assert join_refusal(binding, "b" * 64, node_ready=False) == ""
    assert join_refusal(binding, "a" * 64, node_ready=True) == ""
    assert join_refusal(None, "b" * 64, node_ready=True) == ""


def test_a_superseded_certificate_may_not_speak_for_the_node() -> None:
    binding = NodeBinding("web-1", "a" * 64, NOW)

    assert "was superseded" in session_refusal(binding, "web-1", "b" * 64)
    assert session_refusal(binding, "web-1", "a" * 64) == ""
    assert session_refusal(None, "web-1", "b" * 64) == ""
