"""What the CLI prints of hostile text: nothing off the allowlist reaches the terminal raw."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from ironcurtain.escalation import terminal

HOSTILE = [
    ("\u202e", "\\u202e"),  # right-to-left override
    ("\u202a\u202b\u202c\u202d", "\\u202a\\u202b\\u202c\\u202d"),
    ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),  # isolates
    ("\u200b\u200c\u200d\u2060\ufeff", "\\u200b\\u200c\\u200d\\u2060\\ufeff"),  # zero-width
    ("\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07"),  # ESC sequences, BEL
    ("\x9b31m", "\\x9b31m"),  # the 8-bit CSI
    ("a\r\nb\tc\x00", "a\\x0d\\x0ab\\x09c\\x00"),
    ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
    ("\u3164\u115f\ufe0f", "\\u3164\\u115f\\ufe0f"),  # letters/marks that draw nothing
    ("\U000e0041", "\\U000e0041"),  # tag characters
    ("\u00a0", "\\xa0"),  # a space that is not the space
    ("\ud800", "\\ud800"),  # a lone surrogate
    ("\\u202e", "\\\\u202e"),  # a literal backslash cannot fake an escape
]


@pytest.mark.parametrize(("raw", "shown"), HOSTILE)
def test_hostile_characters_are_made_visible(raw: str, shown: str) -> None:
    assert terminal.neutral(raw) == shown


@pytest.mark.parametrize("text", ["/work/src/a.py", "héllo wörld", "日本語", "e\u0301", "a-b_c!?"])
def test_ordinary_text_passes_unchanged(text: str) -> None:
    assert terminal.neutral(text) == text


def test_every_code_point_that_passes_is_printable() -> None:
    """Variant sweep: the whole BMP; what passes raw is a letter, mark, digit, punctuation,
    symbol or the plain space, never a control, format, separator or unassigned character."""
    for point in range(0x10000):
        char = chr(point)
        shown = terminal.neutral(char)
        if shown == char:
            assert char == " " or unicodedata.category(char)[0] in "LMNPS", hex(point)
        else:
            assert shown.isascii(), hex(point)
            assert shown.isprintable(), hex(point)
            assert shown.startswith("\\"), hex(point)


def row(**extra: Any) -> dict[str, Any]:
    return {
        "id": "e0001",
        "session_id": "s1",
        "server": "filesystem",
        "tool": "write_file",
        "arguments": {"path": "/work/src/a.py"},
        "paths": ["/work/src/a.py"],
        "domains": [],
        "left": "42s",
        "rule": "writes-need-a-human",
        "reason": "writes need a human",
        **extra,
    }


def test_summary_shows_tool_paths_deadline_and_session() -> None:
    line = terminal.summary(row())
    for part in ("e0001", "42s", "s1", "filesystem__write_file", "[writes-need-a-human]", "/work/"):
        assert part in line


def test_summary_shows_the_real_host_of_a_url() -> None:
    url = "https://docs.example.org@evil.example/x"
    line = terminal.summary(
        row(tool="fetch", arguments={"url": url}, paths=[], domains=["evil.example"]), 200
    )
    assert f"{url} (host evil.example)" in line


def test_summary_falls_back_to_domains_without_a_url_argument() -> None:
    line = terminal.summary(row(arguments={"q": 1}, paths=[], domains=["api.example"]))
    assert "host api.example" in line


@pytest.mark.parametrize("field", ["id", "session_id", "tool", "left", "rule"])
@pytest.mark.parametrize("raw", [raw for raw, _ in HOSTILE])
def test_summary_neutralises_every_field(field: str, raw: str) -> None:
    line = terminal.summary(row(**{field: f"x{raw}y"}, paths=[f"/work/{raw}"]))
    assert all(c == " " or unicodedata.category(c)[0] in "LMNPS" for c in line), repr(line)


@pytest.mark.parametrize("width", [20, 40, 80, 120])
def test_summary_is_one_bounded_line_for_very_long_values(width: int) -> None:
    long = "/work/" + "a" * 100_000
    line = terminal.summary(row(paths=[long], session_id="s" * 5000, tool="日" * 3000), width)
    assert "\n" not in line
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)
    assert columns <= width
    assert line.endswith(terminal.ELLIPSIS)


def test_summary_of_an_invalid_record_says_so() -> None:
    line = terminal.summary({"id": "e9", "session_id": "s", "invalid": True, "reason": "bad\x1b"})
    assert "INVALID" in line
    assert "\x1b" not in line


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        (True, "true"),
        (12.5, "12.5"),
        ([], "[]"),
        ({}, "{}"),
        ('say "hi"\u202e', '"say \\"hi\\"\\u202e"'),
    ],
)
def test_non_string_arguments_are_shown_as_json(value: Any, shown: str) -> None:
    assert terminal.scalar(value) == shown


def test_detail_pretty_prints_nested_arguments_neutralised() -> None:
    arguments = {"b\u202e": [1, {"c": "x\x1b[31m"}], "a": None}
    escalation = row(
        arguments=arguments,
        notes=["content: text was redacted (secret-looking)"],
        recent_audit=["allow filesystem__read_file\x1b[0m"],
        digest="d1",
    )
    choices = [{"id": "abc123", "description": "filesystem__write_file: paths under /work/src/"}]
    lines = terminal.detail(escalation, choices, None)
    text = "\n".join(lines)
    assert "  a: null" in lines
    assert "  b\\u202e:" in lines
    assert "    - 1" in lines
    assert '      c: "x\\x1b[31m"' in lines
    assert "content: text was redacted" in text
    assert "allow filesystem__read_file\\x1b[0m" in text
    assert "  abc123  filesystem__write_file: paths under /work/src/" in lines
    assert "rule      writes-need-a-human" in lines
    assert "decision  pending" in lines
    assert all(c == " " or unicodedata.category(c)[0] in "LMNPS" for c in "".join(lines))


def test_detail_says_when_no_scope_is_offered_and_shows_a_decision() -> None:
    decision = {"verdict": "approved", "by": "alice", "when": "2026-01-01", "reason": "ok"}
    lines = terminal.detail(row(), [], decision)
    assert "remember scopes offered: none" in lines
    assert "decision  approved by alice at 2026-01-01: ok" in lines


def test_history_line_names_who_decided() -> None:
    entry = {"escalation": row(), "decision": {"verdict": "denied", "by": "bob\u202e", "when": "t"}}
    line = terminal.history_line(entry)
    assert "denied" in line
    assert "by bob\\u202e" in line
    assert "e0001" in line


@pytest.mark.parametrize(
    "arguments",
    [
        {"urls": ["http://a.example/x", {"deep": " https://b.example/y"}]},
        {"n": 3, "flag": True, "none": None, "nested": [[1, 2], {"k": 1.5}]},
        {1: "int key"},
    ],
)
def test_summary_and_detail_take_any_json_arguments(arguments: dict[Any, Any]) -> None:
    line = terminal.summary(row(arguments=arguments, paths=[7], session_id=12))
    assert "\n" not in line
    assert terminal.detail(row(arguments=arguments))


def test_urls_anywhere_in_the_arguments_show_their_hosts() -> None:
    arguments = {"urls": ["http://a.example/x", {"deep": " https://b.example/y"}]}
    line = terminal.summary(row(arguments=arguments, paths=[]), 400)
    assert "(host a.example)" in line
    assert "(host b.example)" in line


# -- the session's labels: registered, the record's own words only as its claim ---------------


def labelled(worktree: str, claimed: str, registered: bool = True) -> dict[str, Any]:
    """An API row (approval/present.escalation_json) of a session registered with `worktree`
    whose record claims `claimed`."""
    return row(
        worktree=worktree if registered else "",
        agent="claude-code" if registered else "",
        task="fix it" if registered else "",
        registered=registered,
        claimed={"worktree": claimed, "agent": "claude-code", "task": "fix it"},
    )


def test_detail_and_summary_show_the_registered_worktree_and_mark_the_claim() -> None:
    shown = labelled("wt-a", "wt-b")
    lines = terminal.detail(shown)
    assert 'worktree wt-a (the session claims "wt-b")  agent claude-code' in lines[1]
    assert lines[2] == "task      fix it"
    assert 'worktree wt-a (the session claims "wt-b")' in terminal.summary(shown, 200)
    assert terminal.labels_line(shown) == (
        'session s1  worktree wt-a (the session claims "wt-b")  agent claude-code  task fix it'
    )


def test_control_an_honest_rows_labels_are_plain() -> None:
    shown = labelled("wt-a", "wt-a")
    assert "worktree wt-a  agent claude-code" in terminal.detail(shown)[1]
    assert "claims" not in terminal.labels_line(shown)


@pytest.mark.parametrize("raw", [raw for raw, _ in HOSTILE] + ['wt-a") (approved by alice'])
def test_a_hostile_claim_reaches_the_terminal_neutral_inside_its_mark(raw: str) -> None:
    shown = labelled("wt-a", raw)
    for text in (terminal.labels_line(shown), terminal.detail(shown)[1]):
        assert terminal.neutral(raw, quote='"') in text
        claim = text.split('worktree wt-a (the session claims "', 1)[1]
        assert claim.startswith(terminal.neutral(raw, quote='"') + '")')
        assert all(c == " " or not unicodedata.category(c).startswith(("C", "Z")) for c in text)


def test_an_unregistered_session_and_an_older_service_show_unverified_labels() -> None:
    unregistered = labelled("", "wt-b", registered=False)
    assert (
        'worktree unverified: no registration (the session claims "wt-b")'
        in (terminal.detail(unregistered)[1])
    )
    older = row(worktree="wt-b", agent="claude-code", task="t")  # no `registered`, no `claimed`
    line = terminal.labels_line(older)
    assert 'worktree unverified: no registration (the session claims "wt-b")' in line
    assert 'task unverified: no registration (the session claims "t")' in line
