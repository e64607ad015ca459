"""The page says where the arguments shown are not the raw ones (pure)."""

from __future__ import annotations

from ironcurtain.approval.present import invalid_json, notes
from ironcurtain.escalation.record import Invalid


def test_redacted_and_cut_text_is_pointed_out_by_argument_path() -> None:
    shown = {
        "url": "https://x.test/?token=[REDACTED]",
        "content": "abc...[50000 chars, sha256 0123456789abcdef]",
        "nested": [{"key": "[REDACTED]"}],
        "plain": "nothing to say",
    }
    assert notes(shown) == [
        "url: text was redacted (secret-looking)",
        "content: long text was cut; only its start is shown",
        "nested[0].key: text was redacted (secret-looking)",
    ]


def test_an_invalid_record_is_listed_as_such_with_every_field_the_page_reads() -> None:
    row = invalid_json(Invalid("s1.0123456789abcdef", "s1", "lacks 'id'", "{}"), None)
    assert row["invalid"] is True
    assert row["call"] == "(invalid record)"
    assert {"id", "session_id", "worktree", "rule", "reason", "created", "left"} <= set(row)
