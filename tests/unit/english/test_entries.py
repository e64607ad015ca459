"""What may stand in a named list, as tables; the checks never raise on any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.english.entries import Kind, domain_problem, path_problem, problems, remote_problem

GOOD_DOMAINS = [
    "docs.python.org",
    "pypi.org",
    "requests.readthedocs.io",
    "*.python.org",
    "a-b.example.co.uk",
    "xn--bcher-kva.de",
]
BAD_DOMAINS = [
    "*", "*.*", "*.com", "com", "org.", "Docs.Python.org", "10.0.0.1", "169.254.169.254",
    "[::1]", "::1", "localhost", "docs.python.org/", "https://pypi.org", "a..b", "-a.com",
    "a.123", "evil.com\n", "ex ample.com", "", "*evil.com", "docs.*.org",
    "*.readthedocs.io", "readthedocs.io", "*.github.io", "pages.dev", "*.co.uk",
]  # fmt: skip
GOOD_PATHS = ["${workspace}", "${workspace}/src", "${workspace}/a/b.txt"]
BAD_PATHS = [
    "/", "/etc", "${policy_dir}", "${workspace}/..", "${workspace}/../x", "${workspace}/a/../../b",
    "${workspace}/", "${workspace}/./a", "${workspace}x", "workspace", "${workspace}/${ca_dir}",
    "${workspace}/a\x00b",
]  # fmt: skip
GOOD_REMOTES = ["origin", "https://git.example.com/acme/app.git", "git@git.example.com:acme/a.git"]
BAD_REMOTES = [
    "*", "https://*", "file:///etc", "ext::sh -c id", "-uorigin", "git@h:../x", "", "origin\n",
]  # fmt: skip


@pytest.mark.parametrize("entry", GOOD_DOMAINS)
def test_a_host_name_is_accepted(entry: str) -> None:
    assert domain_problem(entry) is None


@pytest.mark.parametrize("entry", BAD_DOMAINS)
def test_a_wildcard_ip_or_malformed_host_is_refused(entry: str) -> None:
    assert domain_problem(entry) is not None


@pytest.mark.parametrize("entry", GOOD_PATHS)
def test_a_workspace_path_is_accepted(entry: str) -> None:
    assert path_problem(entry) is None


@pytest.mark.parametrize("entry", BAD_PATHS)
def test_a_path_outside_or_climbing_out_of_the_workspace_is_refused(entry: str) -> None:
    assert path_problem(entry) is not None


@pytest.mark.parametrize("entry", GOOD_REMOTES)
def test_a_git_remote_is_accepted(entry: str) -> None:
    assert remote_problem(entry) is None


@pytest.mark.parametrize("entry", BAD_REMOTES)
def test_a_wildcard_or_odd_remote_is_refused(entry: str) -> None:
    assert remote_problem(entry) is not None


def test_a_list_that_is_not_a_list_of_strings_is_refused() -> None:
    assert problems(Kind.DOMAINS, "pypi.org") == ["a list must be a list of strings"]
    assert problems(Kind.DOMAINS, [1]) == ["a list must be a list of strings"]
    assert problems(Kind.DOMAINS, ["pypi.org", "pypi.org"]) == ["an entry is listed twice"]


@given(st.sampled_from(list(Kind)), st.lists(st.text(max_size=40), max_size=5))
def test_the_checks_answer_for_any_text(kind: Kind, entries: list[str]) -> None:
    assert isinstance(problems(kind, entries), list)


@given(st.text(max_size=60))
def test_an_accepted_domain_is_plain_lower_case_ascii_with_a_dot(entry: str) -> None:
    if domain_problem(entry) is None:
        name = entry.removeprefix("*.")
        assert name.isascii()
        assert name == name.lower()
        assert "." in name
        assert "*" not in name
        assert "\n" not in name
