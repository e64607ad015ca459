"""Budget arithmetic as tables: admission reserves, settlement charges, the ledger's lock holds."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ironcurtain.mitm import budget
from ironcurtain.mitm.bounds import Bound
from ironcurtain.mitm.providers import Price
from ironcurtain.mitm.usage import Reading, Usage

PRICE = Price("*", input=3.0, output=15.0)
ASK = budget.Ask(input_tokens=20, output_tokens=40, cost_usd=0.01, model="m")


@pytest.mark.parametrize(
    ("limits", "totals", "held", "admitted", "reason"),
    [
        # control: room for the whole reservation
        (budget.Limits(tokens=100), budget.Totals(0), ASK, True, None),
        (budget.Limits(tokens=60), budget.Totals(0, reserved_tokens=1), ASK, False, "may use 60"),
        (budget.Limits(tokens=61), budget.Totals(0, reserved_tokens=1), ASK, True, None),  # fits
        # beside requests in flight, the bound must fit in what is left: refused before forwarding
        (
            budget.Limits(tokens=100),
            budget.Totals(0, reserved_tokens=50),
            ASK,
            False,
            "50 of 100 left beside the requests in flight",
        ),
        (
            budget.Limits(tokens=100),
            budget.Totals(0, input_tokens=30, output_tokens=20, reserved_tokens=1),
            ASK,
            False,
            "49 of 100 left",
        ),
        # alone, a request may go while the budget is not used up (overshoot <= its reservation)
        (budget.Limits(tokens=59), budget.Totals(0), ASK, True, None),
        (budget.Limits(tokens=100), budget.Totals(0, input_tokens=99), ASK, True, None),
        (budget.Limits(tokens=100), budget.Totals(0, input_tokens=100), ASK, False, "exhausted"),
        (
            budget.Limits(tokens=100),
            budget.Totals(0, input_tokens=60, reserved_tokens=40),
            ASK,
            False,
            "token budget exhausted (60 of 100 tokens used, 40 reserved)",
        ),
        # requests are counted at admission
        (budget.Limits(requests=3), budget.Totals(0, requests=2), ASK, True, None),
        (budget.Limits(requests=3), budget.Totals(0, requests=3), ASK, False, "request budget"),
        # cost: the reservation's price must fit too
        (budget.Limits(cost_usd=0.02), budget.Totals(0, cost_usd=0.01), ASK, True, None),
        (budget.Limits(cost_usd=0.005), budget.Totals(0), ASK, True, None),  # alone
        (
            budget.Limits(cost_usd=0.02),
            budget.Totals(0, cost_usd=0.005, reserved_cost_usd=0.006),
            ASK,
            False,
            "may cost $0.0100",
        ),
        (budget.Limits(seconds=10), budget.Totals(started=-10), ASK, False, "wall-clock"),
        # free endpoints reserve nothing but still count as requests
        (budget.Limits(tokens=100), budget.Totals(0, reserved_tokens=100), budget.Ask(), False, ""),
        (budget.Limits(tokens=100), budget.Totals(0, reserved_tokens=99), budget.Ask(), True, None),
        (budget.Limits(None, None, None, None), budget.Totals(0, 10**9, 10**9), ASK, True, None),
    ],
)
def test_admission_table(
    limits: budget.Limits,
    totals: budget.Totals,
    held: budget.Ask,
    admitted: bool,
    reason: str | None,
) -> None:
    outcome = budget.admit(limits, totals, held, now=0)
    if admitted:
        assert isinstance(outcome, budget.Totals)
        assert outcome.requests == totals.requests + 1
        assert outcome.reserved_tokens == totals.reserved_tokens + held.tokens
        # committed passes the limit only for a request alone, by at most its reservation
        assert outcome.committed_tokens <= (limits.tokens or 10**30) + held.tokens * (
            not totals.reserved_tokens
        )
    else:
        assert isinstance(outcome, str)
        assert reason in outcome


def test_settling_releases_the_reservation_and_charges_the_real_usage() -> None:
    admitted = budget.admit(budget.Limits(), budget.Totals(0), ASK, 0)
    assert isinstance(admitted, budget.Totals)
    settled = budget.settle(admitted, ASK, Usage(12, 34), PRICE)
    assert (settled.requests, settled.input_tokens, settled.output_tokens) == (1, 12, 34)
    assert (settled.reserved_tokens, settled.reserved_cost_usd) == (0, 0.0)
    assert settled.cost_usd == pytest.approx((12 * 3 + 34 * 15) / 1e6)


def test_an_ask_is_priced_at_the_models_rate() -> None:
    held = budget.ask(Bound(1000, 2000, "m"), PRICE)
    assert held == budget.Ask(1000, 2000, (1000 * 3 + 2000 * 15) / 1e6, "m")


VENDOR = Usage(12, 34, "m")


@pytest.mark.parametrize(
    ("reading", "complete", "status", "charged", "estimated"),
    [
        # control: a normal answer is charged the vendor's own figures, exactly
        (Reading(VENDOR, 999, True), True, 200, VENDOR, False),
        # complete but no usage in a 2xx answer: it could not be metered, the reservation is kept
        (Reading(Usage(), 0, True), True, 200, Usage(20, 40, "m"), True),
        # an error answer without usage costs nothing (vendors do not bill refusals)
        (Reading(Usage(), 0, True), True, 400, Usage(0, 0, "m"), False),
        # too large to read whole: the larger of what was found and the reservation
        (Reading(Usage(12, 34), 0, False), True, 200, Usage(20, 40, "m"), True),
        (Reading(Usage(50, 90), 0, False), True, 200, Usage(50, 90, "m"), True),
        # cut: at least what streamed, at most the bound, at least the vendor's running count
        (Reading(Usage(12, 1), 25, True), False, 200, Usage(12, 25, "m"), True),
        (Reading(Usage(12, 1), 5000, True), False, 200, Usage(12, 40, "m"), True),
        (Reading(Usage(12, 39), 2, True), False, 200, Usage(12, 39, "m"), True),
        # cut before the vendor said anything: the input estimate
        (Reading(Usage(), 0, True), False, 200, Usage(20, 0, "m"), True),
    ],
)
def test_charge_table(
    reading: Reading, complete: bool, status: int, charged: Usage, estimated: bool
) -> None:
    assert budget.charge(ASK, reading, complete, status) == (charged, estimated)


def test_an_unanswered_request_is_charged_only_when_the_vendor_may_be_working() -> None:
    assert budget.unanswered(ASK, timed_out=False) == Usage(0, 0, "m")
    assert budget.unanswered(ASK, timed_out=True) == Usage(20, 40, "m")


def _race(ledger: budget.Ledger, asks: list[budget.Ask]) -> list[str | None]:
    """Every admission released at once (a barrier), from as many threads as requests."""
    barrier = threading.Barrier(len(asks))

    def one(request: budget.Ask) -> str | None:
        barrier.wait(timeout=10)
        return ledger.admit(request, now=0)

    with ThreadPoolExecutor(len(asks)) as pool:
        return list(pool.map(one, asks))


def test_twenty_concurrent_admissions_never_commit_more_than_the_token_budget() -> None:
    ledger = budget.Ledger(budget.Limits(tokens=100, seconds=None, cost_usd=None), started=0)
    outcomes = _race(ledger, [budget.Ask(10, 20)] * 20)
    assert outcomes.count(None) == 3  # 3 x 30 fit in 100; a fourth would not
    assert ledger.totals.committed_tokens == 90
    assert ledger.totals.requests == 3


def test_ten_concurrent_admissions_against_three_requests_admit_exactly_three() -> None:
    ledger = budget.Ledger(budget.Limits(tokens=None, requests=3, seconds=None), started=0)
    outcomes = _race(ledger, [budget.Ask()] * 10)
    assert outcomes.count(None) == 3
    assert all("request budget exhausted" in o for o in outcomes if o is not None)


def test_settled_requests_make_room_again() -> None:
    ledger = budget.Ledger(budget.Limits(tokens=100, seconds=None, cost_usd=None), started=0)
    assert ledger.admit(budget.Ask(10, 50), 0) is None
    assert ledger.admit(budget.Ask(10, 50), 0) is not None  # 60 reserved, 60 more do not fit
    ledger.settle(budget.Ask(10, 50), Usage(10, 5), PRICE)
    assert ledger.totals.committed_tokens == 15
    assert ledger.admit(budget.Ask(10, 50), 0) is None  # control: the real usage was smaller
