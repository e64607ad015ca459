"""The JSON scanner that strips inspect answers (images/socket-proxy/scan.lua), run with lua5.3.

It is not a decoder: it walks strings, escapes and nesting and empties every "Env" array. So it is
fuzzed against Python's json: on any JSON value it must agree with a real decoder about what is
kept, and on anything that is not one whole JSON value it must refuse (nil), never pass it on.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .lua import Lua

# One interpreter call per example: no deadline (a busy machine is slow), many more examples in CI.
DEEP = settings(max_examples=2000 if os.environ.get("CI") == "true" else 200, deadline=None)

SECRET = "SIBLING_TOKEN=sekrit"


def strip(lua: Lua, text: str | bytes) -> object:
    out, _ = lua.call("strip_env", text if isinstance(text, bytes) else text.encode())
    return None if out is None else json.loads(out)


def stripped(value: object) -> object:
    """What the scanner must answer: every Env key holding an array gets []."""
    if isinstance(value, dict):
        return {
            k: [] if k == "Env" and isinstance(v, list) else stripped(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [stripped(v) for v in value]
    return value


INSPECT = {
    "Id": "a" * 64,
    "Name": "/web-1",
    "Config": {"Env": [SECRET, "PATH=/usr/bin"], "Labels": {"Env": "a label", "x": '"Env":["y"]'}},
    "HostConfig": {"Env": None},
}


def test_every_env_array_is_emptied_and_nothing_else_changes(lua: Lua) -> None:
    assert strip(lua, json.dumps(INSPECT)) == stripped(INSPECT)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(INSPECT)[:-1],  # cut short
        json.dumps(INSPECT)[:100],
        json.dumps(INSPECT) + "x",  # something after the value
        json.dumps(INSPECT) + "{}",
        '"just a string"',
        "42",
        "",
        "   ",
        '{"Config":{"Env":["' + SECRET + '"]}',  # never closed
        '{"Config":{"Env":["' + SECRET + '\\"]}}',  # the closing quote escaped
        '{"Config":{"Env":["' + SECRET + '"]}}}',  # one close too many
        "]" + json.dumps(INSPECT),
    ],
)
def test_a_text_that_is_not_one_whole_json_value_is_refused(lua: Lua, text: str) -> None:
    out, _ = lua.call("strip_env", text.encode())
    assert out is None


def test_the_id_check_reads_top_level_strings_only(lua: Lua) -> None:
    body = json.dumps({"Config": {"Id": "nested"}, "Id": "top", "Name": "/web-1"}).encode()
    assert lua.call("top_level_string", body, "Id")[0] == b"top"
    assert lua.call("top_level_string", body, "Name")[0] == b"/web-1"
    assert lua.call("top_level_string", body, "Missing")[0] is None
    nested = json.dumps({"Config": {"Id": "nested"}}).encode()
    assert lua.call("top_level_string", nested, "Id")[0] is None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["Env", "env", "Config", "a", 'E"nv', "\\"]), children, max_size=4
        )
    ),
    max_leaves=20,
)
OBJECTS = st.dictionaries(st.sampled_from(["Env", "Config", "Id", "x"]), JSON, max_size=4)


@DEEP
@given(OBJECTS, st.booleans())
def test_the_scanner_agrees_with_a_json_decoder_on_every_object(
    lua: Lua, value: dict[str, object], ascii_only: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert strip(lua, text) == stripped(value)


@DEEP
@given(OBJECTS, st.data())
def test_any_cut_of_an_answer_is_refused(
    lua: Lua, value: dict[str, object], data: st.DataObject
) -> None:
    text = json.dumps(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    assert lua.call("strip_env", text[:cut].encode())[0] is None


@DEEP
@given(st.binary(max_size=120))
def test_arbitrary_bytes_never_raise_and_no_env_string_survives(lua: Lua, body: bytes) -> None:
    out, _ = lua.call("strip_env", body)
    if out is None:
        return
    try:
        decoded = json.loads(out)
    except ValueError:
        return  # not JSON to a decoder either: a client cannot read an Env out of it
    assert stripped(decoded) == decoded
