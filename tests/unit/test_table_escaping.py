"""Every CLI table shows control characters escaped: text from nodes never drives a terminal."""

from __future__ import annotations

from master.api.render import render_object
from master.api.tables import format_table, header_for, rows_for
from master.model import Event, ObjectMeta


def test_an_event_message_with_escape_sequences_is_printed_escaped() -> None:
    event = Event(
        meta=ObjectMeta(name="web-1.1"),
        involved_kind="Pod",
        involved_name="web-1",
        reason="Fenced\x1b]0;owned\x07",
        message="stopped\x1b[2J\x1b[1;1Hyour cluster is fine\r\nreally\u202e",
        type="Warning",
        first_seen=10.0,
        last_seen=10.0,
    )
    rows = rows_for("Event", [render_object(event, 11.0)], wide=False, now=11.0)

    table = format_table(header_for("Event", False), rows)

    assert not any(c in table for c in "\x1b\x07\r\u202e")
    assert "stopped\\x1b[2J\\x1b[1;1Hyour cluster is fine\\r\\nreally\\u202e" in table
    assert "Fenced\\x1b]0;owned\\x07" in table
    assert len(table.splitlines()) == 2  # a header and one row: no injected line breaks
