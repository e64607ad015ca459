"""A malformed policy is refused with file, line and what is wrong."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironcurtain.policy import PolicyError, parse_policy

GOOD = """\
version: 1
protected:
  paths: [/p]
lists:
  ws: [/ws]
servers:
  fs:
    root: /ws
    tools:
      read: {path: read-path}
rules:
  - name: r
    effect: allow
    reason: ok
    when: {paths_within: ws}
"""


def test_a_good_policy_loads() -> None:
    policy = parse_policy(GOOD, "p.yaml", {})
    assert policy.rules[0].name == "r"


BAD = [
    (GOOD.replace("effect: allow", "effect: permit"), 13, "effect must be allow, deny or escalate"),
    (GOOD.replace("read-path", "reed-path"), 10, "unknown role 'reed-path'"),
    (GOOD.replace("paths_within: ws", "paths_within: nope"), 15, "unknown list 'nope'"),
    (GOOD.replace("paths_within", "path_within"), 15, "unknown key 'path_within'"),
    (GOOD.replace("version: 1", "version: 2"), 1, "version must be 1"),
    (GOOD.replace("[/p]", "[p]"), 3, "not absolute"),
    (GOOD.replace("[/p]", '["${nope}"]'), 3, "unknown variable ${nope}"),
    (GOOD + "  - name: r\n    effect: deny\n    reason: twice\n", 16, "defined twice"),
    (GOOD.replace("    reason: ok\n", ""), 12, "reason must be a non-empty string"),
    (GOOD.replace("  fs:\n", "  fs:\n    bogus: 1\n"), 8, "unknown key 'bogus'"),
    (GOOD.replace("version: 1\n", "version: 1\nversion: 1\n"), 2, "duplicate key 'version'"),
    (GOOD.replace("lists:", "lists: [unclosed"), 5, "not valid YAML"),
]


@pytest.mark.parametrize(("text", "line", "fault"), BAD, ids=lambda v: str(v)[:30])
def test_a_malformed_policy_is_refused_with_its_line(text: str, line: int, fault: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "policy.yaml", {})
    assert refused.value.file == "policy.yaml"
    assert fault in refused.value.message
    assert refused.value.line == line, str(refused.value)
    assert str(refused.value).startswith(f"policy.yaml:{line}: ")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_either_loads_or_raises_policy_error(text: str) -> None:
    with contextlib.suppress(PolicyError):
        parse_policy(text, "fuzz.yaml", {})
