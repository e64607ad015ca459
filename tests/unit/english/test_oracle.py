"""The real SDK against the fake vendor over TLS: the answer text, vendor errors, the key file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironcurtain.english.oracle import OracleError, Question, Rejected, block, connect

from .conftest import Vendor


def oracle(vendor: Vendor, tmp_path: Path, model: str = "claude-sonnet-5-5"):
    key = tmp_path / "key"
    key.write_text("sk-ant-api03-file-key\n")
    return connect(key, base_url=vendor.url, ca_file=vendor.ca, model=model)


def test_a_question_gets_the_scripted_answer_parsed(vendor: Vendor, tmp_path: Path) -> None:
    vendor.script("```json\n[1, 2]\n```")
    found = oracle(vendor, tmp_path)
    try:
        q = Question("sys", "prompt", lambda t: block(t).strip())
        assert q.parse(found.ask(q.system, q.prompt)) == "[1, 2]"
    finally:
        found.close()
    (seen,) = vendor.fake.seen
    assert b'"system":"sys"' in seen.body.replace(b" ", b"")


def test_a_vendor_error_is_an_oracle_error(vendor: Vendor, tmp_path: Path) -> None:
    found = oracle(vendor, tmp_path, model="error-429")
    try:
        with pytest.raises(OracleError, match="HTTP 429"):
            found.ask("s", "p")
    finally:
        found.close()


def test_the_vendor_is_verified_against_the_given_ca_only(vendor: Vendor, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k\n")
    found = connect(key, base_url=vendor.url, ca_file=None)  # the system store: not our test CA
    try:
        with pytest.raises(OracleError, match="unreachable"):
            found.ask("s", "p")
    finally:
        found.close()


def test_a_missing_or_empty_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OracleError, match="cannot read"):
        connect(tmp_path / "nope")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(OracleError, match="empty"):
        connect(tmp_path / "empty")


@pytest.mark.parametrize(
    ("text", "inner"),
    [("plain", "plain"), ("say\n```yaml\na: 1\n```\nbye", "a: 1\n"), ("```\nx\n```", "x\n")],
)
def test_the_one_code_block_is_taken(text: str, inner: str) -> None:
    assert block(text) == inner


def test_two_code_blocks_are_refused() -> None:
    with pytest.raises(Rejected, match="2 code blocks"):
        block("```\na\n```\n```\nb\n```")
