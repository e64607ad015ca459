"""One canonical spelling per URL, for the circuit breaker: a table, and properties."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.policy.urls import canonical

SAME = [
    ("HTTPS://Docs.Python.ORG/3/", "https://docs.python.org/3"),
    ("https://docs.python.org.:443/3", "https://docs.python.org/3"),
    ("http://docs.python.org:80/", "http://docs.python.org/"),
    ("http://docs.python.org", "http://docs.python.org/"),
    ("https://h.org/a/./b/../c//d/", "https://h.org/a/c/d"),
    ("https://h.org/../../a", "https://h.org/a"),
    ("https://h.org/%7euser/%2e%2e/x", "https://h.org/x"),
    ("https://h.org/a%2fb", "https://h.org/a%2Fb"),  # an escaped slash stays escaped
    ("https://h.org/p?q=%7e#frag", "https://h.org/p?q=~"),
    ("https://h.org/p?", "https://h.org/p"),
    ("https://h.org:8443/p", "https://h.org:8443/p"),
    ("https://u:pw@h.org/p", "https://u:pw@h.org/p"),
    ("http://[::1]:80/x", "http://[::1]/x"),
]


@pytest.mark.parametrize(("raw", "expected"), SAME)
def test_a_url_has_one_canonical_spelling(raw: str, expected: str) -> None:
    assert canonical(raw) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://h.org/a", "https://h.org/A"),
        ("https://h.org/a", "http://h.org/a"),
        ("https://h.org/a?x=1", "https://h.org/a?x=2"),
        ("https://h.org/a", "https://h.org:8443/a"),
        ("https://h.org/a", "https://g.org/a"),
    ],
)
def test_urls_that_reach_other_things_stay_apart(a: str, b: str) -> None:
    assert canonical(a) != canonical(b)


hosts = st.from_regex(r"[a-zA-Z0-9]{1,8}(\.[a-zA-Z0-9]{1,8}){1,3}\.?", fullmatch=True)
paths = st.lists(
    st.sampled_from(["a", "B", ".", "..", "", "%2e", "%7E", "%41", "x%2Fy"]), max_size=6
)


@given(
    st.sampled_from(["http", "HTTPS"]), hosts, st.sampled_from(["", ":80", ":443", ":8080"]), paths
)
def test_canonical_is_idempotent_and_keeps_scheme_and_host(
    scheme: str, host: str, port: str, segments: list[str]
) -> None:
    raw = f"{scheme}://{host}{port}/" + "/".join(segments)
    once = canonical(raw)
    assert canonical(once) == once
    parts = urlsplit(once)
    assert parts.scheme == scheme.lower()
    assert parts.hostname == host.lower().rstrip(".")
    assert "/./" not in parts.path + "/"
    assert "/../" not in parts.path + "/"
