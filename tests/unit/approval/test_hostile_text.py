"""Bidi overrides and zero-width characters a session (or a hostile argument) puts in any text a
page shows reach the page as visible escapes, never raw (F9 of the attacker review): the notes
built from argument keys, the remember scopes offered and remembered, the history's call, rule,
decider and reason, a decision's reason, an invalid record's problem and stored text."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from ironcurtain.approval import present
from ironcurtain.escalation.record import Invalid
from ironcurtain.escalation.types import Verdict

from .conftest import MemoryChannel, escalation_request, log_in

RLO, ZWSP = "\u202e", "\u200b"  # right-to-left override, zero-width space
HOSTILE = f"gpj{RLO}exe{ZWSP}"
SHOWN = "gpj\\u202eexe\\u200b"  # how neutral() makes it visible


@pytest.fixture
def browser(client: FlaskClient, tokens: dict[str, str]) -> FlaskClient:
    assert log_in(client, "alice", tokens["alice"]).status_code == 302
    return client


def raw_free(page: str) -> None:
    assert RLO not in page
    assert ZWSP not in page


def hostile_request(**extra: Any) -> Any:
    directory = f"/work/{HOSTILE}"
    return escalation_request(
        tool=f"write_{HOSTILE}",
        rule=f"rule-{HOSTILE}",
        arguments={"path": f"{directory}/a.py", f"key{HOSTILE}": "[REDACTED]"},
        paths=(f"{directory}/a.py",),
        **extra,
    )


def test_the_detail_page_shows_notes_and_offered_scopes_neutral(
    browser: FlaskClient, channel: MemoryChannel
) -> None:
    escalation = channel.create(hostile_request())
    assert any(HOSTILE in n for n in present.notes(dict(escalation.arguments)))  # the attack
    assert any(HOSTILE in s.describe() for s in present.scope_options(escalation))
    page = browser.get(f"/escalations/{escalation.id}").text
    raw_free(page)
    notes = page.split('id="notes"', 1)[1].split("</ul>", 1)[0]
    assert f"key{SHOWN}: text was redacted" in notes
    form = page.split('id="decide"', 1)[1]
    assert f"/work/{SHOWN}" in form  # the offered directory scope, visible


def test_a_decisions_reason_and_decider_are_shown_neutral(
    browser: FlaskClient, channel: MemoryChannel
) -> None:
    escalation = channel.create(escalation_request())
    channel.decide(escalation.id, Verdict.DENIED, by=f"bob{ZWSP}", reason=f"because {HOSTILE}")
    page = browser.get(f"/escalations/{escalation.id}").text
    raw_free(page)
    decision = page.split('id="decision"', 1)[1].split("</p>", 1)[0]
    assert "bob\\u200b" in decision
    assert f"because {SHOWN}" in decision
    api = browser.get(f"/api/v1/escalations/{escalation.id}").json
    assert api is not None
    assert api["decision"]["reason"] == f"because {HOSTILE}"  # the API keeps the raw text
    assert api["decision"]["shown"]["reason"] == f"because {SHOWN}"  # what live.js shows


def test_the_history_shows_call_rule_decider_and_reason_neutral(
    browser: FlaskClient, channel: MemoryChannel
) -> None:
    escalation = channel.create(hostile_request(session_id=f"s{RLO}1"))
    channel.decide(escalation.id, Verdict.APPROVED, by="alice", reason=f"fine {HOSTILE}")
    page = browser.get("/history").text
    raw_free(page)
    row = page.split("<tbody>", 1)[1]
    for shown in (f"filesystem__write_{SHOWN}", f"rule-{SHOWN}", f"fine {SHOWN}", "s\\u202e1"):
        assert shown in row, shown


def test_the_sessions_page_shows_remembered_scopes_neutral(
    browser: FlaskClient, channel: MemoryChannel
) -> None:
    escalation = channel.create(hostile_request())
    scope = next(s for s in present.scope_options(escalation) if HOSTILE in s.describe())
    channel.decide(escalation.id, Verdict.APPROVED, by="alice", remember=scope)
    page = browser.get("/sessions").text
    raw_free(page)
    remembered = page.split('class="inline remembered"', 1)[1].split("</form>", 1)[0]
    assert f"/work/{SHOWN}" in remembered
    assert f'value="{scope.id}"' in remembered  # control: still revocable by its id


def test_an_invalid_records_problem_and_stored_text_are_shown_neutral(
    browser: FlaskClient, channel: MemoryChannel
) -> None:
    forged = Invalid("s1.0123456789abcdef", "s1", f"lacks {HOSTILE}", f'{{"tool": "{HOSTILE}"')
    channel.records[forged.id] = forged  # type: ignore[assignment]
    page = browser.get(f"/escalations/{forged.id}").text
    raw_free(page)
    assert f"lacks {SHOWN}" in page
    assert f"&#34;tool&#34;: &#34;{SHOWN}&#34;" in page


def test_plain_text_is_shown_as_it_is(browser: FlaskClient, channel: MemoryChannel) -> None:
    # Control: nothing to neutralise, nothing changed (accents and non-Latin letters too).
    escalation = channel.create(escalation_request(rule="règle-写入"))
    channel.decide(escalation.id, Verdict.DENIED, by="alice", reason="non, merci")
    assert "règle-写入" in browser.get("/history").text
    assert "non, merci" in browser.get(f"/escalations/{escalation.id}").text
