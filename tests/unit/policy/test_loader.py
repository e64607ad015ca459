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


@pytest.mark.parametrize("text", ["[]:", "{a: 1}: x", "? [a, b]\n: c"])
def test_a_key_that_is_a_list_or_a_mapping_is_a_policy_error(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text, "fuzz.yaml", {})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_either_loads_or_raises_policy_error(text: str) -> None:
    with contextlib.suppress(PolicyError):
        parse_policy(text, "fuzz.yaml", {})


DOCS = """\
version: 1
lists:
  docs:
    - docs.python.org
    - {entry}
  unused:
    - "*.github.io"
servers:
  web:
    tools:
      fetch: {{url: url}}
rules:
  - name: docs
    effect: allow
    reason: ok
    when: {{domains_in: docs}}
"""

SHARED_HOSTING = [
    "readthedocs.io", "*.readthedocs.io", "github.io", "*.github.io", "pages.dev", "*.pages.dev",
    "netlify.app", "*.netlify.app", "vercel.app", "*.vercel.app", "gitlab.io", "herokuapp.com",
    "web.app", "firebaseapp.com", "workers.dev", "blogspot.com", "s3.amazonaws.com",
    "githubusercontent.com", "readthedocs-hosted.com", "gitbook.io", "codeberg.page", "fly.dev",
    "onrender.com", "azurewebsites.net", "cloudfront.net", "appspot.com", "rtfd.io",
    "readthedocs.org", "*.co.uk", "co.uk", "GitHub.IO", "github.io.",
]  # fmt: skip


@pytest.mark.parametrize("entry", SHARED_HOSTING)
def test_a_shared_hosting_suffix_on_a_domain_list_is_refused(entry: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(DOCS.format(entry=f'"{entry}"'), "p.yaml", {})
    assert caught.value.line == 5  # the entry's own line
    assert "shared-hosting suffix" in caught.value.message
    assert "name the sites instead" in caught.value.message


NAMED_SITES = [
    "requests.readthedocs.io", "docs.readthedocs.io", "octocat.github.io", "*.octocat.github.io",
    "myproject.pages.dev", "bucket.s3.amazonaws.com", "python.org", "*.python.org",
    "example.co.uk", "xn--bcher-kva.de",
]  # fmt: skip


@pytest.mark.parametrize("entry", NAMED_SITES)
def test_a_named_site_or_a_wildcard_below_a_registrable_domain_loads(entry: str) -> None:
    policy = parse_policy(DOCS.format(entry=f'"{entry}"'), "p.yaml", {})
    assert entry in policy.lists["docs"]


@pytest.mark.parametrize(
    ("entry", "fault"),
    [
        ("https://docs.python.org", "is not a host name"),
        ("docs.python.org/3", "is not a host name"),
        ("docs.python.org:443", "is not a host name"),
        ("10.0.0.1", "is an IP address"),
        ("localhost", "every host under a top-level domain"),
        ("*.io", "every host under a top-level domain"),
        ("*", "a wildcard may only lead"),
        ("docs.*.org", "a wildcard may only lead"),
    ],
)
def test_a_domain_list_entry_that_is_no_host_name_is_refused(entry: str, fault: str) -> None:
    with pytest.raises(PolicyError, match=fault) as caught:
        parse_policy(DOCS.format(entry=f'"{entry}"'), "p.yaml", {})
    assert caught.value.line == 5


def test_lists_no_domain_rule_uses_are_not_read_as_hosts() -> None:
    # "unused" holds *.github.io, but no rule matches hosts against it (a path list may hold
    # anything a path can be).
    assert parse_policy(DOCS.format(entry="pypi.org"), "p.yaml", {}).lists["unused"]


def test_the_default_policy_names_no_shared_hosting_suffix() -> None:
    from pathlib import Path

    from ironcurtain.policy import load_policy
    from ironcurtain.policy.domains import is_public_suffix

    repo = Path(__file__).resolve().parents[3]
    names = ("workspace", "policy_dir", "audit_dir", "state_dir", "ca_dir", "secrets_dir")
    policy = load_policy(repo / "policy" / "policy.yaml", {n: f"/{n}" for n in names})
    docs = policy.lists["trusted-docs"]
    assert "docs.python.org" in docs
    assert not any(is_public_suffix(e.removeprefix("*.")) for e in docs)
    assert not any(e.endswith(".readthedocs.io") and e != "docs.readthedocs.io" for e in docs)
