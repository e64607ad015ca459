"""The user's own prices: admitted shapes, and every other shape refused naming the field."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from ironcurtain.config import prices
from ironcurtain.config.settings import parse_user_config, user_table

KNOWN = frozenset({"anthropic", "openai"})


def test_a_users_prices_are_admitted_as_written() -> None:
    doc = tomllib.loads(
        '[[prices.anthropic]]\nmodel = "claude-opus-4-5*"\ninput = 5\noutput = 25.5\n'
        '[[prices.anthropic]]\nmodel = "my-model"\ninput = 0\noutput = 0\n'
    )
    assert prices.parse(doc["prices"], KNOWN) == {
        "anthropic": [
            {"model": "claude-opus-4-5*", "input": 5.0, "output": 25.5},
            {"model": "my-model", "input": 0.0, "output": 0.0},
        ]
    }


def _one(**entry: Any) -> dict[str, Any]:
    return {"anthropic": [{"model": "m", "input": 1.0, "output": 2.0, **entry}]}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ([], "a table of providers"),
        ({"mystery": [{"model": "m", "input": 1, "output": 1}]}, "prices.mystery: unknown"),
        ({"Anthropic!": []}, "is not a provider name"),
        ({"anthropic": []}, "a list of 1 to"),
        ({"anthropic": [{"model": "m"}] * 201}, "a list of 1 to"),
        ({"anthropic": ["claude"]}, "prices.anthropic[0]: a table"),
        ({"anthropic": [{"model": "m", "input": 1}]}, "missing output"),
        (_one(currency="EUR"), "unknown currency"),
        (_one(model=""), "[0].model"),
        (_one(model="claude opus"), "[0].model"),
        (_one(model="m\u202e"), "[0].model"),  # a bidi override in a name shown to people
        (_one(model="x" * 129), "[0].model"),
        (_one(input="5"), "[0].input: a number"),
        (_one(input=True), "[0].input: a number"),
        (_one(input=float("nan")), "[0].input: between"),
        (_one(output=float("inf")), "[0].output: between"),
        (_one(output=-1), "[0].output: between"),
        (_one(output=1e9), "[0].output: between"),
    ],
)
def test_every_other_shape_is_refused_naming_what(raw: object, named: str) -> None:
    with pytest.raises(prices.PriceError) as caught:
        prices.parse(raw, KNOWN)
    assert named in str(caught.value)


def test_toml_nan_is_refused() -> None:
    doc = tomllib.loads('[[prices.openai]]\nmodel = "gpt-x"\ninput = nan\noutput = 1\n')
    with pytest.raises(prices.PriceError, match="input: between"):
        prices.parse(doc["prices"], KNOWN)


def test_the_flat_settings_leave_the_prices_section_to_its_module(
    tmp_path: Any,
) -> None:
    text = 'image_tag = "mine"\n[[prices.openai]]\nmodel = "gpt-x"\ninput = 1\noutput = 2\n'
    assert parse_user_config(text) == {"IRONCURTAIN_IMAGE_TAG": "mine"}
    config = tmp_path / "ironcurtain" / "config.toml"
    config.parent.mkdir()
    config.write_text(text)
    raw, where = user_table({"XDG_CONFIG_HOME": str(tmp_path)}, "prices")
    assert raw == {"openai": [{"model": "gpt-x", "input": 1, "output": 2}]}
    assert where == str(config)
    assert user_table({"XDG_CONFIG_HOME": str(tmp_path / "none")}, "prices")[0] is None
