"""The query allowlist (images/socket-proxy/query.lua) as tables, run with lua5.3 outside HAProxy.

Each rule's spec comes from `rules.build`, exactly as rendered into haproxy.cfg. The proxy forwards
only the query this function rebuilds, so every case checks the forwarded string itself.
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironcurtain.socketproxy.rules import ApiRange, Rule, build
from ironcurtain.socketproxy.settings import from_environ

from .lua import Lua

# One interpreter call per example: no deadline (a busy machine is slow), many more examples in CI.
DEEP = settings(max_examples=2000 if os.environ.get("CI") == "true" else 200, deadline=None)

ENGINE = ApiRange((1, 12), (1, 41))
ENV = {"CONTAINERS": "1", "IMAGES": "1", "NETWORKS": "1", "VOLUMES": "1", "INFO": "1"}
VISIBLE = ("web-1", "db.main")
RULES = {
    rule.name: rule
    for rule in build(
        from_environ(
            {**ENV, "VISIBLE_CONTAINERS": ",".join(VISIBLE), "POST": "1", "ALLOW_RESTARTS": "1"}
        ),
        ENGINE,
    )
}
WEB_ID = "a" * 64
IDS = f"web-1={WEB_ID}"  # db.main is declared but does not exist


def check(lua: Lua, rule: str, raw: str, ids: str = IDS) -> tuple[str | None, str | None]:
    r: Rule = RULES[rule]
    out, why = lua.call("canonical", raw, r.spec(), r.owned_spec(), ",".join(VISIBLE), ids)
    return (
        None if out is None else out.decode(),
        None if why is None else why.decode(),
    )


def enc(value: object) -> str:
    return quote(json.dumps(value), safe="")


def filters_of(query: str) -> dict[str, list[str]]:
    forwarded = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    return {k: sorted(v) for k, v in json.loads(forwarded["filters"]).items()}


EXACT = {"name": ["^/db\\.main$", "^/web-1$"]}

ALLOWED = [
    # (rule, raw query, forwarded query)
    ("ping", "", ""),
    ("version", "", ""),
    ("top", "", ""),
    ("inspect", "size=1", "size=1"),
    ("inspect", "size=False", "size=0"),
    ("logs", "stdout=1&stderr=1", "stdout=1&stderr=1"),
    ("logs", "stderr=true&stdout=TRUE&follow=0", "follow=0&stdout=1&stderr=1"),
    ("logs", "tail=all&timestamps=1", "timestamps=1&tail=all"),
    ("logs", "tail=100&since=1700000000&until=1700000000.123456789", None),
    ("logs", "%73tdout=1", "stdout=1"),  # a percent-encoded name is decoded, then forwarded plain
    ("stats", "stream=0&one-shot=1", "stream=0&one-shot=1"),
    ("stop", "t=10", "t=10"),
    ("kill", "signal=SIGTERM", "signal=SIGTERM"),
    ("networks", "", ""),
    ("images", "all=0", "all=0"),
]


@pytest.mark.parametrize(("rule", "raw", "forwarded"), ALLOWED)
def test_an_allowed_query_is_forwarded_rebuilt_from_its_checked_values(
    lua: Lua, rule: str, raw: str, forwarded: str | None
) -> None:
    out, why = check(lua, rule, raw)
    assert why is None
    if forwarded is None:
        assert out is not None
        assert dict(parse_qsl(out)) == dict(parse_qsl(raw))
    else:
        assert out == forwarded


REFUSED = [
    # (rule, raw query, the word the refusal names)
    ("top", "ps_args=aeww", "ps_args"),
    ("top", "ps_args=-eo+pid,args", "ps_args"),
    ("top", "ps_%61rgs=aeww", "ps_args"),  # encoded name
    ("top", "%70%73%5f%61%72%67%73=aeww", "ps_args"),
    ("top", "PS_ARGS=aeww", "PS_ARGS"),
    ("top", "ps_args", "ps_args"),
    ("top", "x=1", '"x"'),
    ("top", "ps_args=aeww;x=1", "character"),
    ("top", "ps_args%3Daeww", "ps_args?aeww"),  # an encoded = is part of the name
    ("logs", "details=1", "details"),
    ("logs", "stdout=1&stdout=0", "repeated"),
    ("logs", "stdout=1&%73tdout=0", "repeated"),
    ("logs", "stdout=1;details=1", "character"),
    ("logs", "stdout=1&&stderr=1", "empty parameter name"),
    ("logs", "stdout=1&", "empty parameter name"),
    ("logs", "=1", "empty parameter name"),
    ("logs", "&", "empty parameter name"),
    ("logs", "stdout=yes", "stdout"),
    ("logs", "stdout=+1", "stdout"),
    ("logs", "stdout=1%00", "stdout"),
    ("logs", "stdout=%zz", "percent-encoding"),
    ("logs", "stdout=%4", "percent-encoding"),
    ("logs", "tail=-1", "tail"),
    ("logs", "tail=1e9", "tail"),
    ("logs", "tail=1234567890", "tail"),
    ("logs", "since=10m", "since"),
    ("logs", "since=2024-01-01T00:00:00Z", "since"),
    ("logs", "since=1.", "since"),
    ("logs", "Stdout=1", "Stdout"),
    ("logs", 'stdout="1"', "character"),
    ("logs", "stdout=1 ", "character"),
    ("stats", "stream=1&ps_args=aeww", "ps_args"),
    ("inspect", "size=1&env=1", "env"),
    ("kill", "signal=sigkill;rm", "character"),
    ("kill", "signal=kill", "signal"),
    ("stop", "t=-1", '"t"'),
    ("ping", "x", '"x"'),
    ("version", "a=1", '"a"'),
    ("list", "before=hidden", "before"),
    ("list", "since=hidden", "since"),
    ("list", "filters=" + enc({"name": ["web"]}), "names nothing visible"),
    ("list", "filters=" + enc({"name": ["web-10"]}), "names nothing visible"),
    ("list", "filters=" + enc({"name": ["."]}), "names nothing visible"),
    ("list", "filters=" + enc({"name": ["^/web-1"]}), "names nothing visible"),
    ("list", "filters=" + enc({"name": []}), "needs a value"),
    ("list", "filters=" + enc({"before": ["hidden"]}), "before"),
    ("list", "filters=" + enc({"ancestor": ["x"]}), "ancestor"),
    ("list", "filters=" + enc({"Name": ["web-1"]}), "Name"),
    ("list", "filters=" + enc(["name"]), "filter object"),
    ("list", "filters=" + enc({"name": "web-1"}), "filter object"),
    ("list", "filters=" + enc({"name": [1]}), "filter object"),
    ("list", "filters=" + enc({"name": {"web-1": False}}), "filter object"),
    ("list", "filters=" + quote('{"name":["web-1"],"name":["hidden"]}'), "filter object"),
    ("list", "filters=" + quote('{"name":["web-1"]}x'), "filter object"),
    ("list", "filters=" + quote('{"name":["web-1"]'), "filter object"),
    ("list", "filters=" + quote('{"name":["\\u0077eb-1"]}'), "filter object"),
    ("list", "filters=" + enc({}) + "&filters=" + enc({"name": ["."]}), "repeated"),
    ("events", "filters=" + enc({"container": ["web"]}), "names nothing visible"),
    ("events", "filters=" + enc({"container": ["web-10"]}), "names nothing visible"),
    ("events", "filters=" + enc({"container": [WEB_ID[:12]]}), "names nothing visible"),
    ("events", "filters=" + enc({"type": ["network"]}), "names nothing visible"),
    ("events", "filters=" + enc({"network": ["bridge"]}), "network"),
    ("events", "filters=" + enc({"container": []}), "needs a value"),
    ("networks", "filters=" + enc({"name": ["x"]}) + "&verbose=1", "verbose"),
    ("networks", "filters=" + enc({"container": ["x"]}), "container"),
]


@pytest.mark.parametrize(("rule", "raw", "named"), REFUSED)
def test_a_query_outside_the_allowlist_is_refused_naming_what(
    lua: Lua, rule: str, raw: str, named: str
) -> None:
    out, why = check(lua, rule, raw)
    assert out is None
    assert why is not None
    assert named in why


def test_the_container_list_always_carries_the_exact_visible_names(lua: Lua) -> None:
    out, _ = check(lua, "list", "all=1")
    assert out is not None
    assert filters_of(out) == EXACT


def test_a_clients_name_filter_narrows_to_that_visible_name_exactly(lua: Lua) -> None:
    for spelled in ("web-1", "/web-1", "^/web-1$"):
        out, _ = check(lua, "list", "filters=" + enc({"name": [spelled], "status": ["running"]}))
        assert out is not None
        assert filters_of(out) == {"name": ["^/web-1$"], "status": ["running"]}


def test_the_clients_map_form_filters_are_read_too(lua: Lua) -> None:
    out, _ = check(lua, "list", "filters=" + enc({"label": {"a=b": True}}))
    assert out is not None
    assert filters_of(out) == {**EXACT, "label": ["a=b"]}


def test_events_are_narrowed_to_the_full_ids_of_visible_containers(lua: Lua) -> None:
    out, _ = check(lua, "events", "since=1700000000")
    assert out is not None
    assert out.startswith("since=1700000000&")
    assert filters_of(out) == {"container": [WEB_ID], "type": ["container"]}


def test_events_of_a_visible_name_that_does_not_exist_match_nothing(lua: Lua) -> None:
    out, _ = check(lua, "events", "filters=" + enc({"container": ["db.main"]}))
    assert out is not None
    assert filters_of(out) == {"container": ["-"], "type": ["container"]}
    out, _ = check(lua, "events", "", ids="")
    assert out is not None
    assert filters_of(out) == {"container": ["-"], "type": ["container"]}


def test_events_accept_a_visible_name_or_its_id_and_forward_the_id(lua: Lua) -> None:
    for spelled in ("web-1", WEB_ID):
        out, _ = check(lua, "events", "filters=" + enc({"container": [spelled], "event": ["die"]}))
        assert out is not None
        assert filters_of(out) == {"container": [WEB_ID], "event": ["die"], "type": ["container"]}


# ---- fuzz: whatever the raw query, what is forwarded is plain, checked and stable ---------------

NAMES = ["stdout", "stderr", "tail", "since", "follow", "details", "ps_args", "filters", "all"]
PIECES = st.one_of(
    st.sampled_from(NAMES),
    st.sampled_from(["=", "&", ";", "%", "%73", "%3D", "%26", "+", "1", "0", "all", "true", "."]),
    st.text(alphabet="abcdefxyz019=&%+;._-~:,", max_size=6),
)
RAW = st.lists(PIECES, max_size=12).map("".join)


@DEEP
@given(raw=RAW, rule=st.sampled_from(["logs", "top", "list", "events", "stats", "images"]))
def test_the_forwarded_query_names_only_allowed_parameters_once_and_is_stable(
    lua: Lua, raw: str, rule: str
) -> None:
    out, why = check(lua, rule, raw)
    if out is None:
        assert why
        return
    allowed = {param.name for param in RULES[rule].params}
    pairs = parse_qsl(out, keep_blank_values=True, strict_parsing=bool(out))
    names = [name for name, _ in pairs]
    assert set(names) <= allowed | {"filters"}
    assert len(names) == len(set(names))
    assert all(c.isalnum() or c in "%&=._~-" for c in out)
    again, _ = check(lua, rule, out)
    assert again == out  # canonical: checking the forwarded query changes nothing


@DEEP
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_or_forwarded_plain_never_raise(lua: Lua, raw: bytes) -> None:
    r = RULES["list"]
    out, why = lua.call("canonical", raw, r.spec(), r.owned_spec(), ",".join(VISIBLE), IDS)
    assert (out is None) != (why is None)
    if out is not None:
        names = filters_of(out.decode())["name"]
        assert names
        assert set(names) <= set(EXACT["name"])


WORDS = st.sampled_from(
    [
        *("web-1", "/web-1", "^/web-1$", "web", "web-10", ".", "db.main", WEB_ID, WEB_ID[:12]),
        *("-", "", "container", "network", "name", "type", "status", "label", "running", "^", ".*"),
    ]
)
CLIENT_FILTERS = st.dictionaries(WORDS, st.lists(WORDS, max_size=3), max_size=4)


@DEEP
@given(CLIENT_FILTERS, st.booleans())
def test_no_client_filter_widens_the_list_or_the_events(
    lua: Lua, filters: dict[str, list[str]], map_form: bool
) -> None:
    shaped = {k: dict.fromkeys(v, True) for k, v in filters.items()} if map_form else filters
    out, _ = check(lua, "list", "all=1&filters=" + enc(shaped))
    if out is not None:
        names = filters_of(out)["name"]
        assert names
        assert set(names) <= set(EXACT["name"])
    out, _ = check(lua, "events", "filters=" + enc(shaped))
    if out is not None:
        forwarded = filters_of(out)
        assert forwarded["type"] == ["container"]
        assert forwarded["container"]
        assert set(forwarded["container"]) <= {WEB_ID, "-"}


FILTER_VALUES = st.lists(st.text(max_size=8), max_size=3)
# A real `\u` escape: a `\` that is not itself escaped, then `u` (`"\\u"` is a backslash and a u).
_U_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u")


@DEEP
@given(st.dictionaries(st.text(max_size=8), FILTER_VALUES, max_size=4), st.booleans())
def test_filters_are_read_as_the_engine_reads_them(
    lua: Lua, filters: dict[str, list[str]], map_form: bool
) -> None:
    shaped: dict[str, object] = (
        {k: dict.fromkeys(v, True) for k, v in filters.items()} if map_form else filters
    )
    text = json.dumps(shaped, ensure_ascii=False)
    out, _ = lua.call("filters", text.encode())
    if _U_ESCAPE.search(text):
        assert out is None  # \u escapes are refused rather than decoded
        return
    assert out is not None
    decoded = json.loads(out)
    assert {k: sorted(v) for k, v in decoded.items()} == {
        k: sorted(set(v)) for k, v in filters.items()
    }
    assert all(v is True for values in decoded.values() for v in values.values())


@DEEP
@given(st.binary(max_size=80))
def test_the_filter_reader_never_raises_and_accepts_only_json(lua: Lua, text: bytes) -> None:
    out, _ = lua.call("filters", text)
    if out is not None:
        json.loads(text)  # whatever it accepted, a JSON parser accepts too
