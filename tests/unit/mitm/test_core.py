"""The pure core: keys, usage, budget, error shapes, providers, settings (bodies: test_shapes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ironcurtain.mitm import budget, errors, fake_keys, providers, settings
from ironcurtain.mitm.providers import ConfigError, ErrorShape, Price
from ironcurtain.mitm.usage import Meter, Usage, extract

# Parsers get a quick look locally and a deep one in CI.
DEEP = hsettings(max_examples=1000 if os.environ.get("CI") == "true" else 100, deadline=None)

# ---- keys ---------------------------------------------------------------------------------------


def test_a_fake_key_is_the_prefix_and_192_random_bits() -> None:
    key = fake_keys.new_fake_key("sk-ant-api03-")
    assert key.startswith("sk-ant-api03-")
    assert len(key) - len("sk-ant-api03-") == 32  # 24 bytes base64url
    assert key != fake_keys.new_fake_key("sk-ant-api03-")


FAKES = {"anthropic": "sk-ant-api03-AAA", "openai": "sk-proj-BBB"}


@pytest.mark.parametrize(
    ("presented", "provider", "ok", "status", "foreign"),
    [
        ("sk-ant-api03-AAA", "anthropic", True, 0, None),
        ("sk-proj-BBB", "openai", True, 0, None),
        (None, "anthropic", False, 401, None),
        ("", "anthropic", False, 401, None),
        ("sk-ant-api03-AAB", "anthropic", False, 401, None),
        ("sk-ant-api03-AAAA", "anthropic", False, 401, None),
        ("sk-proj-BBB", "anthropic", False, 403, "openai"),
        ("sk-ant-api03-AAA", "openai", False, 403, "anthropic"),
    ],
)
def test_key_check_table(
    presented: str | None, provider: str, ok: bool, status: int, foreign: str | None
) -> None:
    verdict = fake_keys.check(presented, provider, FAKES)
    assert (verdict.ok, verdict.status, verdict.foreign) == (ok, status, foreign)
    assert "AAA" not in verdict.reason
    assert "BBB" not in verdict.reason


@pytest.mark.parametrize(
    ("header", "value", "key"),
    [
        ("authorization", "Bearer k1", "k1"),
        ("authorization", "bearer k1", "k1"),
        ("authorization", "Basic k1", None),
        ("x-api-key", " k2 ", "k2"),
        ("x-api-key", None, None),
    ],
)
def test_presented_key_extraction(header: str, value: str | None, key: str | None) -> None:
    assert fake_keys.presented_key(header, value) == key


# ---- usage --------------------------------------------------------------------------------------


def _sse(*events: dict) -> bytes:
    return b"".join(b"event: x\ndata: " + json.dumps(e).encode() + b"\n\n" for e in events)


ANTHROPIC_SSE = _sse(
    {
        "type": "message_start",
        "message": {
            "model": "claude-opus-4",
            "usage": {"input_tokens": 100, "cache_read_input_tokens": 20, "output_tokens": 1},
        },
    },
    {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "usage"}},
    {"type": "message_delta", "usage": {"output_tokens": 7}},
    {"type": "message_delta", "usage": {"output_tokens": 50}},
    {"type": "message_stop"},
)


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_anthropic_sse_usage_is_read_whatever_the_chunking(size: int) -> None:
    meter = Meter("text/event-stream; charset=utf-8")
    for i in range(0, len(ANTHROPIC_SSE), size):
        meter.feed(ANTHROPIC_SSE[i : i + size])
    assert meter.finish().usage == Usage(120, 50, "claude-opus-4")


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (
            "application/json",
            {"model": "claude-x", "usage": {"input_tokens": 3, "output_tokens": 4}},
            Usage(3, 4, "claude-x"),
        ),
        (
            "application/json",
            {"model": "gpt-4o", "usage": {"prompt_tokens": 5, "completion_tokens": 6}},
            Usage(5, 6, "gpt-4o"),
        ),
        (
            "application/json",
            {"response": {"model": "gpt-4.1", "usage": {"input_tokens": 7, "output_tokens": 8}}},
            Usage(7, 8, "gpt-4.1"),
        ),
        (
            "application/json",
            {
                "modelVersion": "gemini-2.5-pro",
                "usageMetadata": {
                    "promptTokenCount": 9,
                    "candidatesTokenCount": 10,
                    "thoughtsTokenCount": 1,
                },
            },
            Usage(9, 11, "gemini-2.5-pro"),
        ),
        (
            "application/json",
            [
                {"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2}},
                {"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5}},
            ],
            Usage(9, 5),
        ),
        ("application/json", {"error": {"message": "no"}}, Usage()),
    ],
)
def test_json_usage_shapes(content_type: str, body: object, expected: Usage) -> None:
    meter = Meter(content_type)
    meter.feed(json.dumps(body).encode())
    assert meter.finish().usage == expected


def test_openai_sse_usage_chunk_is_read_and_done_marker_ignored() -> None:
    stream = (
        b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
        b'data: {"model":"gpt-4o","choices":[],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\n'
        b"data: [DONE]\n\n"
    )
    meter = Meter("text/event-stream")
    meter.feed(stream)
    assert meter.finish().usage == Usage(3, 4, "gpt-4o")


@DEEP
@given(st.binary(max_size=500), st.sampled_from(["text/event-stream", "application/json"]))
def test_the_meter_never_raises_on_garbage(data: bytes, content_type: str) -> None:
    meter = Meter(content_type)
    meter.feed(data)
    usage = meter.finish().usage
    assert usage.input_tokens >= 0
    assert usage.output_tokens >= 0


@DEEP
@given(
    st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    )
)
def test_extract_accepts_any_json_document(doc: object) -> None:
    assert extract(doc).total >= 0


# ---- budget -------------------------------------------------------------------------------------

PRICE = Price("*", input=3.0, output=15.0)


def test_cost_is_per_million_tokens() -> None:
    assert budget.cost(Usage(1_000_000, 100_000), PRICE) == pytest.approx(4.5)


@pytest.mark.parametrize(
    ("limits", "totals", "now", "expected"),
    [
        (budget.Limits(), budget.Totals(started=0), 10, None),
        (
            budget.Limits(tokens=100),
            budget.Totals(0, input_tokens=60, output_tokens=40),
            1,
            "token budget",
        ),
        (budget.Limits(tokens=100), budget.Totals(0, input_tokens=60, output_tokens=39), 1, None),
        (budget.Limits(requests=2), budget.Totals(0, requests=2), 1, "request budget"),
        (budget.Limits(seconds=60), budget.Totals(started=100), 160, "wall-clock budget"),
        (budget.Limits(seconds=60), budget.Totals(started=100), 159.9, None),
        (budget.Limits(cost_usd=1), budget.Totals(0, cost_usd=1.0), 1, "cost budget"),
        (
            budget.Limits(None, None, None, None),
            budget.Totals(0, 10**9, 10**9, 10**9, 1e9),
            1e9,
            None,
        ),
    ],
)
def test_budget_table(
    limits: budget.Limits, totals: budget.Totals, now: float, expected: str | None
) -> None:
    found = budget.exhausted(limits, totals, now)
    assert (found is None) == (expected is None)
    if expected:
        assert expected in found


def test_default_budgets_are_one_million_tokens_thirty_minutes_five_dollars() -> None:
    assert budget.Limits() == budget.Limits(
        tokens=1_000_000, requests=None, seconds=1800, cost_usd=5.0
    )


def test_usage_adds_up() -> None:
    held = budget.Ask(5, 50, 0.0)
    admitted = budget.admit(budget.Limits(), budget.Totals(0), held, 0)
    assert isinstance(admitted, budget.Totals)
    totals = budget.settle(admitted, held, Usage(10, 20), PRICE)
    assert (totals.requests, totals.tokens, totals.reserved_tokens) == (1, 30, 0)
    assert totals.cost_usd == pytest.approx((10 * 3 + 20 * 15) / 1e6)


# ---- error shapes -------------------------------------------------------------------------------


def test_error_bodies_follow_each_providers_shape() -> None:
    anth = json.loads(errors.body(ErrorShape.ANTHROPIC, 403, "no"))
    assert anth == {
        "type": "error",
        "error": {"type": "permission_error", "message": "IronCurtain: no"},
    }
    goog = json.loads(errors.body(ErrorShape.GOOGLE, 401, "no"))
    assert goog["error"]["status"] == "UNAUTHENTICATED"
    oai = json.loads(errors.body(ErrorShape.OPENAI, 403, "no"))
    assert oai["error"]["message"] == "IronCurtain: no"


# ---- providers and settings ---------------------------------------------------------------------


def test_the_builtin_providers_are_data() -> None:
    known = providers.builtin()
    assert set(known) == {"anthropic", "claude-platform", "openai", "google"}
    assert known["anthropic"].hosts == ("api.anthropic.com",)
    assert known["anthropic"].key_prefix == "sk-ant-api03-"
    assert known["openai"].key_headers == ("authorization",)
    assert known["google"].key_headers == ("x-goog-api-key",)
    assert known["anthropic"].price("claude-sonnet-4-5").input == 3.0
    assert known["anthropic"].price("something-new").output == 75.0  # unknown: the dearest


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "providers"),
        (
            {"providers": {"x": {"hosts": ["1.2.3.4"], "auth": "bearer", "key_prefix": "abc"}}},
            "DNS names",
        ),
        (
            {"providers": {"x": {"hosts": ["a.example"], "auth": "magic", "key_prefix": "abc"}}},
            "magic",
        ),
        ({"providers": {"x": {"hosts": ["a.example"], "auth": "bearer"}}}, "key_prefix"),
        (
            {"providers": {"x": {"hosts": ["a.example"], "auth": "none", "endpoints": ["GET x"]}}},
            "endpoint",
        ),
        ({"providers": {"x": {"hosts": ["a.example"], "auth": "none", "colour": 1}}}, "colour"),
        (
            {
                "providers": {
                    "x": {"hosts": ["a.example"], "auth": "none", "endpoints": ["POST /v1"]}
                }
            },
            "needs a body shape",
        ),
        (
            {
                "providers": {
                    "x": {
                        "hosts": ["a.example"],
                        "auth": "none",
                        "endpoints": [{"call": "POST /v1", "body": "anything"}],
                    }
                }
            },
            "unknown body shape",
        ),
        (
            {
                "providers": {
                    "x": {
                        "hosts": ["a.example"],
                        "auth": "none",
                        "endpoints": [{"call": "GET /v1", "query": {"k": ["a b"]}}],
                    }
                }
            },
            "plain values",
        ),
        (
            {
                "providers": {
                    "x": {"hosts": ["a.example"], "auth": "none", "headers": ["x-api_key"]}
                }
            },
            "looks like a credential",
        ),
        (
            {"providers": {"x": {"hosts": ["a.example"], "auth": "none", "headers": ["cookie"]}}},
            "cannot be forwarded",
        ),
        (
            {
                "providers": {
                    "x": {"hosts": ["a.example"], "auth": "none"},
                    "y": {"hosts": ["a.example"], "auth": "none"},
                }
            },
            "claimed",
        ),
    ],
)
def test_malformed_provider_files_are_rejected_with_a_reason(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        providers.parse(doc)


def test_a_user_provider_file_adds_a_provider(tmp_path: Path) -> None:
    extra = tmp_path / "p.json"
    extra.write_text(
        json.dumps(
            {
                "providers": {
                    "mirror": {
                        "hosts": ["llm.internal.example"],
                        "auth": "bearer",
                        "key_prefix": "sk-m-",
                        "endpoints": [{"call": "POST /v1/chat/completions", "body": "openai-chat"}],
                        "meter": {"POST /v1/chat/completions": {"output": ["max_tokens"]}},
                        "prices": [{"model": "*", "input": 1, "output": 2}],
                    }
                }
            }
        )
    )
    known = providers.load(extra)
    assert known["mirror"].hosts == ("llm.internal.example",)
    assert "anthropic" in known


def _settings_doc(tmp_path: Path, **changes: object) -> dict:
    doc = {
        "ca_dir": "ca",
        "audit": "audit.jsonl",
        "keys": {
            "anthropic": {"fake": fake_keys.new_fake_key("sk-ant-api03-"), "real_file": "real"}
        },
    }
    doc.update(changes)
    return doc


def test_settings_parse_with_defaults(tmp_path: Path) -> None:
    parsed = settings.parse(_settings_doc(tmp_path), base=tmp_path)
    assert parsed.listen_port == 3128
    assert parsed.hosts == frozenset({"api.anthropic.com"})
    assert parsed.real_key_files["anthropic"] == tmp_path / "real"
    assert parsed.budget == budget.Limits()
    assert parsed.tuning.max_body_bytes == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keys": {}}, "at least one"),
        ({"keys": {"nope": {}}}, "unknown provider"),
        ({"keys": {"anthropic": {"fake": "sk-ant-api03-x"}}}, "real_file"),
        ({"keys": {"anthropic": {"fake": "wrong-prefix", "real_file": "r"}}}, "must start with"),
        (
            {
                "keys": {
                    "anthropic": {"fake": "sk-ant-api03-x", "real_file": "r"},
                    "openai": {"fake": "sk-ant-api03-x", "real_file": "r"},
                }
            },
            "start with|share",
        ),
        ({"upstream": {"api.anthropic.com": {"address": "nowhere"}}}, "host:port"),
        ({"budget": {"tokenz": 1}}, "tokenz"),
        ({"limits": {"max_body": 1}}, "max_body"),
    ],
)
def test_bad_settings_are_rejected(tmp_path: Path, changes: dict, message: str) -> None:
    doc = _settings_doc(tmp_path, **changes)
    if message is None:
        settings.parse(
            doc
        )  # unknown budget keys are ignored? no: they must not be silently dropped
        return
    with pytest.raises(ConfigError, match=message):
        settings.parse(doc)


def test_real_keys_are_read_from_files_and_fakes_are_refused_as_reals(tmp_path: Path) -> None:
    parsed = settings.parse(_settings_doc(tmp_path), base=tmp_path)
    (tmp_path / "real").write_text("sk-ant-api03-the-real-one\n")
    assert settings.read_real_keys(parsed) == {"anthropic": "sk-ant-api03-the-real-one"}
    (tmp_path / "real").write_text(parsed.fake_keys["anthropic"])
    with pytest.raises(ConfigError, match="holds a fake key"):
        settings.read_real_keys(parsed)
    (tmp_path / "real").write_text("")
    with pytest.raises(ConfigError, match="empty"):
        settings.read_real_keys(parsed)
    (tmp_path / "real").unlink()
    with pytest.raises(ConfigError, match="cannot read"):
        settings.read_real_keys(parsed)
