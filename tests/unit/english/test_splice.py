"""Sections of policy.yaml are replaced as text; every other line, comments too, stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.english.splice import SpliceError, replace_list, replace_top, scalar

REPO = Path(__file__).resolve().parents[3]
CURRENT = (REPO / "policy" / "policy.yaml").read_text()


def test_replacing_a_section_keeps_the_comments_of_the_next_one() -> None:
    new = replace_top(CURRENT, "rules", "rules:\n  - {name: x}\n")
    assert new.endswith("rules:\n  - {name: x}\n")
    assert "# Phase 2: the first rule that matches decides." in new
    assert new.partition("rules:")[0] == CURRENT.partition("\nrules:")[0] + "\n"


def test_replacing_one_list_leaves_the_others_and_their_comments() -> None:
    new = replace_list(CURRENT, "trusted-docs", ["pypi.org"])
    assert "  trusted-docs:\n    - pypi.org\n  # Git remotes" in new
    assert "  # Documentation sites the agent may fetch without asking.\n  trusted-docs:" in new
    assert "  workspace:\n    - ${workspace}\n" in new
    assert new.count("\n") == CURRENT.count("\n") - 7


def test_an_empty_list_is_written_as_such() -> None:
    assert "  trusted-docs: []\n" in replace_list(CURRENT, "trusted-docs", [])


def test_a_list_that_is_not_there_cannot_be_refreshed() -> None:
    with pytest.raises(SpliceError, match="no list 'nope'"):
        replace_list(CURRENT, "nope", [])


def test_a_missing_or_doubled_section_is_refused() -> None:
    with pytest.raises(SpliceError):
        replace_top("version: 1\n", "rules", "rules: []\n")
    with pytest.raises(SpliceError):
        replace_top("rules: []\nrules: []\n", "rules", "rules: []\n")


@given(st.text(max_size=30))
def test_a_scalar_reads_back_as_the_same_string(text: str) -> None:
    import yaml

    try:
        loaded = yaml.safe_load(f"k: {scalar(text)}")
    except yaml.YAMLError:
        return  # JSON escapes YAML cannot read (lone surrogates): the loader refuses them
    assert loaded == {"k": text}
