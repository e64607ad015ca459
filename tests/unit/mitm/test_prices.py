"""Prices: the user's entries come first, and every response line says what priced it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironcurtain.fakellm.server import INPUT_TOKENS, OUTPUT_TOKENS
from ironcurtain.mitm import settings
from ironcurtain.mitm.providers import ConfigError, builtin
from ironcurtain.session.summary import llm_counts

from .harness import Stack, post, raw, start

MINE = {"anthropic": [{"model": "house-model*", "input": 1000.0, "output": 0.0}]}


@pytest.fixture
def priced(tmp_path: Path) -> Iterator[Stack]:
    running = start(tmp_path, prices=MINE)
    yield running
    running.close()


def _ask(stack: Stack, model: str) -> dict[str, Any]:
    def responses() -> list[dict[str, Any]]:
        return [line for line in stack.audit() if line["event"] == "response"]

    before = len(responses())
    body = b'{"model":"%s","max_tokens":5,"messages":[]}' % model.encode()
    key = b"x-api-key: " + stack.fakes["anthropic"].encode()
    assert raw(stack, "api.anthropic.com", post("/v1/messages", key, body)).status == 200
    stack.until(lambda: len(responses()) > before)  # its line follows its last byte
    return responses()[-1]


def test_a_users_price_comes_before_the_built_in_table(priced: Stack) -> None:
    line = _ask(priced, "house-model-2")
    assert (line["model"], line["priced_as"]) == ("house-model-2", "house-model*")
    assert line["cost_usd"] == pytest.approx(INPUT_TOKENS * 1000.0 / 1e6)


def test_a_model_without_a_price_is_priced_by_the_fallback_and_the_summary_names_it(
    priced: Stack,
) -> None:
    known = _ask(priced, "claude-sonnet-4-5")
    assert known["priced_as"] == "claude-sonnet-*"  # control: the built-in table still applies
    unknown = _ask(priced, "claude-nova-1")
    assert unknown["priced_as"] == "*"
    assert unknown["cost_usd"] == pytest.approx((INPUT_TOKENS * 15 + OUTPUT_TOKENS * 75) / 1e6)
    counts = llm_counts(priced.audit())
    assert counts.unpriced == ("anthropic:claude-nova-1",)


@pytest.mark.parametrize(
    ("prices", "named"),
    [
        ({"mystery": [{"model": "m", "input": 1, "output": 1}]}, "prices.mystery: unknown"),
        ({"anthropic": [{"model": "m", "input": -1, "output": 1}]}, "prices.anthropic[0].input"),
        ({"anthropic": [{"model": "m", "input": 1, "output": 1, "x": 1}]}, "unknown x"),
    ],
)
def test_a_malformed_price_in_the_settings_refuses_to_start(
    tmp_path: Path, prices: object, named: str
) -> None:
    doc = {
        "ca_dir": str(tmp_path),
        "audit": str(tmp_path / "a.jsonl"),
        "keys": {"claude-platform": {}},
        "prices": prices,
    }
    with pytest.raises(ConfigError) as caught:
        settings.parse(doc)
    assert named in str(caught.value)


def test_current_models_have_prices_of_their_own() -> None:
    table = builtin()
    for provider, model in [
        ("anthropic", "claude-opus-4-5-20251101"),
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("anthropic", "claude-haiku-4-5-20251001"),
        ("openai", "gpt-5"),
        ("openai", "gpt-5-mini"),
        ("openai", "gpt-4.1-mini"),
        ("google", "gemini-2.5-flash-lite"),
    ]:
        assert table[provider].price(model).model != "*", (provider, model)
    assert table["anthropic"].price("claude-opus-4-5-20251101").output == 25.0
    assert table["anthropic"].price("claude-opus-4-1-20250805").output == 75.0
