"""Pages and the API show the worktree, agent and task a session was registered with, never the
record's own words: a compromised session's claim (another session's worktree, say) is shown
only as its claim, marked and neutral; an unregistered session's labels are unverified; no
registration hash, however malformed, breaks a page. The worktree filter is the registered one.
(The real Redis side: tests/container/escalation/test_acl.py.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from ironcurtain.approval import present
from ironcurtain.escalation.labels import Registration
from ironcurtain.escalation.record import Invalid
from ironcurtain.escalation.types import Verdict

from .conftest import MemoryChannel, bearer, escalation_request, log_in

RLO, ZWSP = "\u202e", "\u200b"


@pytest.fixture
def browser(client: FlaskClient, tokens: dict[str, str]) -> FlaskClient:
    assert log_in(client, "alice", tokens["alice"]).status_code == 302
    return client


@pytest.fixture
def auth(tokens: dict[str, str]) -> dict[str, str]:
    return bearer(tokens["bob"])


def register(channel: MemoryChannel, session: str, worktree: str) -> None:
    channel.register(session, worktree=worktree, agent="claude-code", task=f"task of {worktree}")


def claims(channel: MemoryChannel, session: str, worktree: str, **extra: Any) -> str:
    """An escalation of `session` whose record claims `worktree` (and its task)."""
    request = escalation_request(
        session_id=session, worktree=worktree, task=f"task of {worktree}", **extra
    )
    return channel.create(request).id


def outside_claims(page: str) -> str:
    """The page without its marked claims: what it says as the truth."""
    return re.sub(r'<span class="claim">.*?</span>', "", page, flags=re.S)


# -- a session claiming another session's worktree -------------------------------------------


def test_the_api_gives_the_registered_worktree_and_the_claim_apart(
    client: FlaskClient, channel: MemoryChannel, auth: dict[str, str]
) -> None:
    register(channel, "s1", "wt-a")
    register(channel, "s2", "wt-b")  # the colleague's worktree the attacker names
    forged = claims(channel, "s1", "wt-b")
    for row in (
        client.get("/api/v1/escalations", headers=auth).json["escalations"][0],
        client.get(f"/api/v1/escalations/{forged}", headers=auth).json["escalation"],
    ):
        assert row["id"] == forged
        assert (row["worktree"], row["task"], row["registered"]) == ("wt-a", "task of wt-a", True)
        claimed = {"worktree": "wt-b", "agent": "claude-code", "task": "task of wt-b"}
        assert row["claimed"] == claimed
        shown = row["shown"]
        assert shown["worktree"] == "wt-a"
        assert shown["labels"]["worktree"] == {
            "name": "worktree",
            "text": "wt-a",
            "verified": True,
            "disputed": True,
            "claim": "wt-b",
        }
        assert shown["labels"]["agent"]["disputed"] is False


def test_the_pages_show_the_registered_worktree_and_mark_the_claim(
    browser: FlaskClient, channel: MemoryChannel
) -> None:
    register(channel, "s1", "wt-a")
    register(channel, "s2", "wt-b")
    forged = claims(channel, "s1", "wt-b")
    pending = browser.get("/").text
    detail = browser.get(f"/escalations/{forged}").text
    for page in (pending, detail):
        assert '<span class="claim">(the session claims "wt-b")</span>' in page
        assert "wt-b" not in outside_claims(page)  # named nowhere as the truth
        assert '<span class="registered">wt-a</span>' in page
    assert '<span class="claim">(the session claims "task of wt-b")</span>' in detail
    channel.decide(forged, Verdict.DENIED, by="alice")
    history = browser.get("/history").text
    assert '(the session claims "wt-b")' in history
    assert "wt-b" not in outside_claims(history)


def test_the_worktree_filter_is_the_registered_worktree_not_the_claim(
    client: FlaskClient, channel: MemoryChannel, auth: dict[str, str]
) -> None:
    register(channel, "s1", "wt-a")
    register(channel, "s2", "wt-b")
    forged = claims(channel, "s1", "wt-b")
    honest = claims(channel, "s2", "wt-b")
    listed = lambda wt: [  # noqa: E731
        e["id"]
        for e in client.get(
            "/api/v1/escalations", query_string={"worktree": wt}, headers=auth
        ).json["escalations"]
    ]
    assert listed("wt-b") == [honest]
    assert listed("wt-a") == [forged]


# -- hostile claims --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "shown"),
    [
        (f"wt-b{RLO}a-tw", "wt-b\\u202ea-tw"),
        (f"wt{ZWSP}-a", "wt\\u200b-a"),  # looks like the registration, is not
        ('wt-a") (approved by alice', 'wt-a\\") (approved by alice'),  # cannot close the quote
        ("wt\n-a\x1b[2J", "wt\\x0a-a\\x1b[2J"),
        ("<b>wt-a</b>", "<b>wt-a</b>"),  # escaped by the page, neutral text for the API
    ],
)
def test_a_hostile_claim_is_shown_neutral_and_marked(
    browser: FlaskClient, channel: MemoryChannel, claim: str, shown: str
) -> None:
    register(channel, "s1", "wt-a")
    forged = claims(channel, "s1", claim)
    row = browser.get(f"/api/v1/escalations/{forged}").json["escalation"]
    assert row["shown"]["labels"]["worktree"]["claim"] == shown
    assert row["shown"]["worktree"] == "wt-a"
    for page in (browser.get("/").text, browser.get(f"/escalations/{forged}").text):
        assert not {RLO, ZWSP, "\x1b"} & set(page)
        assert "<b>wt-a</b>" not in page
        assert '(the session claims "' in page


# -- sessions with no (usable) registration --------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        None,  # never registered (or its registration expired)
        redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        [b"wt-a", None, None],  # fields missing
        [None, None, None],
    ],
)
def test_a_session_without_a_usable_registration_has_unverified_labels(
    browser: FlaskClient, channel: MemoryChannel, raw: Any
) -> None:
    if raw is not None:
        channel.raw_registrations["s1"] = raw
    forged = claims(channel, "s1", "wt-b")
    row = browser.get(f"/api/v1/escalations/{forged}").json["escalation"]
    assert (row["worktree"], row["agent"], row["task"], row["registered"]) == ("", "", "", False)
    assert row["shown"]["labels"]["worktree"]["verified"] is False
    assert row["shown"]["labels"]["worktree"]["claim"] == "wt-b"
    listing = browser.get("/api/v1/escalations", query_string={"worktree": "wt-b"})
    assert listing.status_code == 200
    assert listing.json["escalations"] == []  # an unverified worktree matches no filter
    for path in ("/", f"/escalations/{forged}", "/history", "/sessions"):
        page = browser.get(path)
        assert page.status_code == 200, path
    assert "unverified: no registration" in browser.get("/").text
    detail = browser.get(f"/escalations/{forged}").text
    assert detail.count("unverified: no registration") == 3  # worktree, agent, task
    assert "wt-b" not in outside_claims(detail)


def test_control_an_honest_sessions_labels_are_shown_plainly(
    browser: FlaskClient, channel: MemoryChannel
) -> None:
    register(channel, "s2", "wt-b")
    honest = claims(channel, "s2", "wt-b")
    row = browser.get(f"/api/v1/escalations/{honest}").json["escalation"]
    assert row["worktree"] == "wt-b"
    assert not any(label["disputed"] for label in row["shown"]["labels"].values())
    for page in (browser.get("/").text, browser.get(f"/escalations/{honest}").text):
        assert '<span class="registered">wt-b</span>' in page
        assert 'class="claim"' not in page
        assert "unverified" not in page


def test_an_invalid_record_shows_its_sessions_registered_labels() -> None:
    invalid = Invalid("s1.0123456789abcdef", "s1", "not JSON", "{")
    row = present.invalid_json(invalid, Registration("wt-a", "claude-code", "t"))
    assert (row["worktree"], row["registered"]) == ("wt-a", True)
    assert row["shown"]["labels"]["worktree"]["text"] == "wt-a"
    assert not row["shown"]["labels"]["worktree"]["disputed"]  # it claims nothing
    unregistered = present.invalid_json(invalid, None)["shown"]["labels"]["worktree"]
    assert (unregistered["verified"], unregistered["disputed"]) == (False, False)


def test_the_digest_does_not_depend_on_the_labels(channel: MemoryChannel) -> None:
    """The proxy computes it from the request it holds: showing other labels changes nothing."""
    escalation = channel.records[claims(channel, "s1", "wt-b")]
    before = escalation.digest()
    shown = present.escalation_json(escalation, 0.0, Registration("wt-a", "x", "y"))
    assert shown["digest"] == before == escalation.digest()


def test_a_hostile_registered_label_is_shown_neutral_too(
    browser: FlaskClient, channel: MemoryChannel
) -> None:
    """A registration comes from the host CLI, or from a member's machine through the registrar:
    shown through the same allowlist as everything else."""
    channel.register("s1", worktree=f"wt{RLO}-a", agent="claude-code", task="<i>t</i>")
    own = claims(channel, "s1", f"wt{RLO}-a")
    row = browser.get(f"/api/v1/escalations/{own}").json["escalation"]
    assert row["shown"]["worktree"] == "wt\\u202e-a"
    assert not row["shown"]["labels"]["worktree"]["disputed"]
    page = browser.get(f"/escalations/{own}").text
    assert RLO not in page
    assert "<i>t</i>" not in page
