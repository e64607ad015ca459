"""Path normalisation and endpoint globs: tables of cases plus Hypothesis properties."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironcurtain.mitm.paths import Endpoint, PathError, Target, first_match, normalise

# Parsers get a quick look locally and a deep one in CI.
DEEP = settings(max_examples=1000 if os.environ.get("CI") == "true" else 100, deadline=None)

REFUSED = [
    b"/v1/../messages",
    b"/v1/./messages",
    b"/..",
    b"//v1/messages",
    b"/v1//messages",
    b"/v1/messages/",
    b"/v1%2Fmessages",
    b"/v1%2fmessages",
    b"/v1%5cmessages",
    b"/v1\\messages",
    b"/v1/messages%00",
    b"/v1/%2e%2e/x",
    b"/v1/%2E/x",
    b"/v1/%C0%AE%C0%AE/x",  # overlong "."
    b"/v1/%C0%AF",  # overlong "/"
    b"/v1/%FF",
    b"/v1/%E2%82",  # truncated UTF-8
    b"/v1/%ED%A0%80",  # a UTF-16 surrogate encoded as UTF-8
    b"/v1/a;b",
    b"/v1/%zz",
    b"/v1/%4",
    b"/v1/%0a",
    b"/v1/\x80",
    b"v1/messages",
    b"*",
    b"http://api.anthropic.com/v1/messages",
    b"/" + b"a" * 3000,
]


@pytest.mark.parametrize("target", REFUSED)
def test_ambiguous_or_malformed_targets_are_refused(target: bytes) -> None:
    with pytest.raises(PathError):
        normalise(target)


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"/v1/messages", "/v1/messages"),
        (b"/v1/messages?beta=true", "/v1/messages"),
        (b"/v1/messages?x=/../y", "/v1/messages"),
        (b"/v1/m%65ssages", "/v1/messages"),
        (
            b"/v1beta/models/gemini-2.5-pro:generateContent",
            "/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        (b"/v1/caf%C3%A9", "/v1/café"),
        (b"/", "/"),
    ],
)
def test_unambiguous_targets_normalise_and_keep_the_raw_form(target: bytes, path: str) -> None:
    result = normalise(target)
    assert result.path == path
    assert result.raw == target


ENDPOINTS = tuple(
    Endpoint.parse(e)
    for e in (
        "POST /v1/messages",
        "POST /v1/messages/count_tokens",
        "GET /v1/models",
        "POST /v1beta/models/*:generateContent",
    )
)


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        ("POST", b"/v1/messages", "POST /v1/messages"),
        ("POST", b"/v1/messages?stream=1", "POST /v1/messages"),
        ("GET", b"/v1/messages", None),
        ("POST", b"/v1/messages/count_tokens", "POST /v1/messages/count_tokens"),
        ("POST", b"/v1/messages/batches", None),
        ("POST", b"/v1/Messages", None),
        (
            "POST",
            b"/v1beta/models/gemini-2.5-pro:generateContent",
            "POST /v1beta/models/*:generateContent",
        ),
        ("POST", b"/v1beta/models/:generateContent", None),  # * needs at least one character
        ("POST", b"/v1beta/models/a/b:generateContent", None),  # * never spans segments
        ("POST", b"/v1beta/models/x:generateContentX", None),
        ("post", b"/v1/messages", None),
    ],
)
def test_endpoint_table(method: str, target: bytes, expected: str | None) -> None:
    found = first_match(ENDPOINTS, method, normalise(target))
    assert (str(found) if found else None) == expected


@pytest.mark.parametrize(
    "spec",
    ["/v1/messages", "POST v1/messages", "POST /v1//x", "POST /v1/../x", "post /x", "POST /x/"],
)
def test_malformed_endpoint_specs_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        Endpoint.parse(spec)


@DEEP
@given(st.binary(max_size=300))
def test_normalise_never_crashes_and_results_are_clean(target: bytes) -> None:
    try:
        result = normalise(target)
    except PathError:
        return
    assert result.path.startswith("/")
    for segment in result.segments:
        assert segment not in ("", ".", "..")
        assert "/" not in segment
        assert "\\" not in segment
        assert "\x00" not in segment
        assert all(ord(c) >= 0x20 and c != "\x7f" for c in segment)


SEGMENT = st.text(
    alphabet=st.characters(
        min_codepoint=0x20, blacklist_characters="/\\;?#%\x7f", blacklist_categories=("Cs",)
    ),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))


def _encode(segment: str) -> bytes:
    out = bytearray()
    for byte in segment.encode():
        ch = chr(byte)
        if ch.isascii() and (ch.isalnum() or ch in "-._~"):
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


@DEEP
@given(st.lists(SEGMENT, min_size=1, max_size=6), st.text(max_size=20))
def test_percent_encoded_paths_decode_back_to_their_segments(
    segments: list[str], query: str
) -> None:
    raw = b"/" + b"/".join(_encode(s) for s in segments)
    if query:
        raw += b"?" + _encode(query)
    target = normalise(raw)
    assert target.segments == tuple(segments)
    assert normalise(target.canonical).segments == target.segments  # canonical is a fixed point
    assert normalise(target.canonical).canonical == target.canonical


@DEEP
@given(st.lists(SEGMENT, min_size=1, max_size=5), st.data())
def test_a_star_matches_exactly_one_whole_segment(segments: list[str], data: st.DataObject) -> None:
    safe = [re.sub(r"[^A-Za-z0-9]", "", s) or "x" for s in segments]
    index = data.draw(st.integers(0, len(safe) - 1))
    pattern = [*safe]
    pattern[index] = "*"
    endpoint = Endpoint.parse("GET /" + "/".join(pattern))
    assert endpoint.matches("GET", Target("/" + "/".join(safe), tuple(safe), b""))
    longer = [*safe[:index], safe[index], "extra", *safe[index + 1 :]]
    assert not endpoint.matches("GET", Target("", tuple(longer), b""))
    assert not endpoint.matches("GET", Target("", tuple(safe[:index] + safe[index + 1 :]), b""))
