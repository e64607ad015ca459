"""The builtin agent's budgets: which one runs out first, switching each off, and the settings."""

from __future__ import annotations

import pytest

from ironcurtain.agents import builtin_budget as b


def test_the_defaults_are_1m_tokens_200_steps_30_minutes_and_5_dollars() -> None:
    assert b.Budgets() == b.Budgets(tokens=1_000_000, steps=200, seconds=1800, cost_usd=5.0)


def test_nothing_is_exhausted_at_the_start() -> None:
    assert b.exhausted(b.Budgets(), b.Spent(started=100.0), now=100.0) is None


@pytest.mark.parametrize(
    ("spent", "now", "budget"),
    [
        (b.Spent(0.0, input_tokens=600_000, output_tokens=400_000), 1.0, "tokens"),
        (b.Spent(0.0, steps=200), 1.0, "steps"),
        (b.Spent(0.0), 1800.0, "seconds"),
        (b.Spent(0.0, cost_usd=5.0), 1.0, "cost_usd"),
    ],
)
def test_each_budget_ends_it_at_its_limit_and_says_which(
    spent: b.Spent, now: float, budget: str
) -> None:
    stop = b.exhausted(b.Budgets(), spent, now)
    assert stop is not None
    assert stop.budget == budget
    assert "exhausted" in stop.message


def test_one_below_each_limit_goes_on() -> None:
    spent = b.Spent(0.0, input_tokens=999_999, steps=199, cost_usd=4.99)
    assert b.exhausted(b.Budgets(), spent, now=1799.9) is None


def test_a_budget_switched_off_never_ends_it() -> None:
    off = b.Budgets(tokens=None, steps=None, seconds=None, cost_usd=None)
    spent = b.Spent(0.0, input_tokens=10**9, steps=10**6, cost_usd=10**6)
    assert b.exhausted(off, spent, now=10**9) is None
    assert b.deadline(off, spent) is None


def test_the_message_names_the_figures() -> None:
    stop = b.exhausted(b.Budgets(steps=3), b.Spent(0.0, steps=3), 0.0)
    assert stop == b.Exhausted("steps", "step budget exhausted (3 of 3 steps)")


def test_cost_figures_keep_their_cents_and_below() -> None:
    small = b.exhausted(b.Budgets(cost_usd=0.001), b.Spent(0.0, cost_usd=0.0011), 0.0)
    large = b.exhausted(b.Budgets(), b.Spent(0.0, cost_usd=5.123), 0.0)
    assert small is not None
    assert large is not None
    assert small.message == "cost budget exhausted ($0.0011 of $0.0010 estimated)"
    assert large.message == "cost budget exhausted ($5.12 of $5.00 estimated)"


def test_spending_adds_up_one_step_per_request() -> None:
    spent = b.Spent(5.0).add(10, 20, 0.5).add(1, 2, 0.25)
    assert (spent.input_tokens, spent.output_tokens, spent.tokens) == (11, 22, 33)
    assert (spent.steps, spent.cost_usd, spent.started) == (2, 0.75, 5.0)


def test_the_deadline_is_the_start_plus_the_time_budget() -> None:
    assert b.deadline(b.Budgets(seconds=60), b.Spent(started=10.0)) == 70.0


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", b.Budgets()),
        ("steps=5", b.Budgets(steps=5)),
        ("tokens=off, seconds=90", b.Budgets(tokens=None, seconds=90.0)),
        ("seconds=10m,cost_usd=$2.5", b.Budgets(seconds=600.0, cost_usd=2.5)),
        ("seconds=1.5h", b.Budgets(seconds=5400.0)),
        ("tokens=off,steps=off,seconds=off,cost_usd=off", b.Budgets(None, None, None, None)),
    ],
)
def test_settings_parse(spec: str, expected: b.Budgets) -> None:
    assert b.parse(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["steps", "steps=0", "steps=-1", "steps=1.5", "tokens=lots", "seconds=5d", "cost_usd=nan",
     "cost_usd=inf", "cost_usd=0", "time=5", "steps=1,steps=2"],
)  # fmt: skip
def test_bad_settings_are_refused_saying_which(spec: str) -> None:
    with pytest.raises(b.BudgetError, match="budget"):
        b.parse(spec)


@pytest.mark.parametrize(
    "budgets",
    [b.Budgets(), b.Budgets(None, 3, 12.5, None), b.Budgets(7, None, None, 0.01)],
)
def test_the_spec_round_trips(budgets: b.Budgets) -> None:
    assert b.parse(b.to_spec(budgets)) == budgets
