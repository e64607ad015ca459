"""A decision is bound to the escalation as the human was shown it (F5 of the attacker review):
a session that rewrites its pending record between the human's look and the click gets nothing
decided (409, "changed since it was shown"), on the page, through the API and from the CLI. The
comparison is atomic with the decision on a real Redis (tests/container/escalation/test_acl.py
test_an_approval_bound_to_what_was_shown_*)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask.testing import FlaskClient

from ironcurtain.cli import main
from ironcurtain.escalation.record import Escalation
from ironcurtain.people.client import ApiError, Client

from .conftest import MemoryChannel, bearer, csrf_of, digest_of, escalation_request, log_in
from .test_command import answer

CHANGED = "changed since it was shown"


def rewrite(channel: MemoryChannel, escalation: Escalation) -> Escalation:
    """What a session holding its own record's key does: a harmless-looking request instead."""
    harmless = dataclasses.replace(
        escalation, tool="read_file", arguments={"path": "/work/README"}, paths=("/work/README",)
    )
    channel.records[escalation.id] = harmless
    return harmless


@pytest.mark.parametrize("action", ["approve", "deny"])
def test_a_form_decision_on_a_record_rewritten_since_the_page_is_refused(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str], action: str
) -> None:
    log_in(client, "alice", tokens["alice"])
    escalation = channel.create(escalation_request(tool="move_file"))
    page = client.get(f"/escalations/{escalation.id}").data
    assert digest_of(page) == escalation.digest()
    harmless = rewrite(channel, escalation)
    data = {"action": action, "csrf_token": csrf_of(page), "digest": digest_of(page)}
    refused = client.post(f"/escalations/{escalation.id}/decide", data=data)
    assert refused.status_code == 409
    assert CHANGED in refused.text
    assert channel.decisions == {}
    # The answer shows the request as it is now, with its own digest: deciding on that works.
    assert digest_of(refused.data) == harmless.digest()
    data["digest"] = digest_of(refused.data)
    assert client.post(f"/escalations/{escalation.id}/decide", data=data).status_code == 302
    assert channel.decisions[escalation.id].by == "alice"


@pytest.mark.parametrize("digest", [None, "", "0" * 63, "G" * 64, "A" * 64])
def test_a_form_without_the_shown_digest_decides_nothing(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str], digest: str | None
) -> None:
    log_in(client, "alice", tokens["alice"])
    escalation = channel.create(escalation_request())
    page = client.get(f"/escalations/{escalation.id}").data
    data = {"action": "approve", "csrf_token": csrf_of(page)}
    if digest is not None:
        data["digest"] = digest
    assert client.post(f"/escalations/{escalation.id}/decide", data=data).status_code == 400
    assert channel.decisions == {}


def test_an_api_approval_on_a_record_rewritten_since_it_was_fetched_is_refused(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str]
) -> None:
    escalation = channel.create(escalation_request(tool="move_file"))
    path = f"/api/v1/escalations/{escalation.id}"
    shown = client.get(path, headers=bearer(tokens["alice"])).json
    assert shown is not None
    harmless = rewrite(channel, escalation)
    refused = client.post(
        f"{path}/approve",
        json={"digest": shown["escalation"]["digest"]},
        headers=bearer(tokens["alice"]),
    )
    assert refused.status_code == 409
    assert refused.json is not None
    assert (refused.json["outcome"], refused.json["decision"]) == ("changed", None)
    assert CHANGED in refused.json["message"]  # type: ignore[index]
    assert channel.decisions == {}
    # Control: the digest of the record as it is now (what a fresh look shows) decides.
    control = client.post(
        f"{path}/approve", json={"digest": harmless.digest()}, headers=bearer(tokens["alice"])
    )
    assert control.status_code == 200
    assert channel.decisions[escalation.id].by == "alice"


@pytest.mark.parametrize("body", [{}, {"digest": None}, {"reason": "ok"}])
def test_an_api_approval_must_name_the_digest_it_was_shown(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str], body: dict[str, Any]
) -> None:
    escalation = channel.create(escalation_request())
    path = f"/api/v1/escalations/{escalation.id}/approve"
    refused = client.post(path, json=body, headers=bearer(tokens["alice"]))
    assert refused.status_code == 400
    assert "digest required" in refused.json["error"]  # type: ignore[index]
    assert channel.decisions == {}


@pytest.mark.parametrize("digest", ["", "x", 7, ["a" * 64], "a" * 65])
def test_a_malformed_digest_is_refused(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str], digest: Any
) -> None:
    escalation = channel.create(escalation_request())
    for action in ("approve", "deny"):
        path = f"/api/v1/escalations/{escalation.id}/{action}"
        answer_ = client.post(path, json={"digest": digest}, headers=bearer(tokens["alice"]))
        assert answer_.status_code == 400
    assert channel.decisions == {}


def test_an_api_denial_may_omit_the_digest_and_is_checked_when_it_names_one(
    client: FlaskClient, channel: MemoryChannel, tokens: dict[str, str]
) -> None:
    first = channel.create(escalation_request())
    path = f"/api/v1/escalations/{first.id}/deny"
    assert client.post(path, json={}, headers=bearer(tokens["bob"])).status_code == 200
    second = channel.create(escalation_request())
    stale = second.digest()
    rewrite(channel, second)
    path = f"/api/v1/escalations/{second.id}/deny"
    assert (
        client.post(path, json={"digest": stale}, headers=bearer(tokens["bob"])).status_code == 409
    )
    assert second.id not in channel.decisions


@pytest.fixture
def cli(
    client: FlaskClient, tokens: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], list[dict[str, Any] | None]]:
    """The CLI as alice over the real API; the bodies it posts are kept."""
    posted: list[dict[str, Any] | None] = []

    def call(self: Client, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if method == "POST":
            posted.append(body)
        response = client.open(path, method=method, json=body, headers=bearer(self.token))
        data = response.get_json() or {}
        if response.status_code >= 400:
            raise ApiError(response.status_code, str(data.get("message") or data["error"]), data)
        return data

    monkeypatch.setattr(Client, "call", call)
    token_file = tmp_path / "alice_token"
    token_file.write_text(tokens["alice"] + "\n")
    return ["--token-file", str(token_file)], posted


def test_the_cli_approval_is_refused_when_the_record_changed_while_the_human_read_it(
    cli: tuple[list[str], list[dict[str, Any] | None]],
    channel: MemoryChannel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, posted = cli
    escalation = channel.create(escalation_request(tool="move_file"))
    prompts: list[str] = []

    def rewrite_then_yes(prompt: str = "") -> str:
        prompts.append(prompt)
        rewrite(channel, escalation)  # while the human reads the summary
        return "y"

    answer(monkeypatch, "y")
    monkeypatch.setattr("builtins.input", rewrite_then_yes)
    assert main(["approve", escalation.id, *args]) == 1
    assert prompts == ["approve? [y/N] "]
    out, err = capsys.readouterr()
    assert "move_file" in out  # what the human was shown
    assert CHANGED in err
    assert channel.decisions == {}
    assert posted[0] is not None
    assert posted[0]["digest"] == escalation.digest()


def test_cli_approve_yes_is_bound_to_what_it_fetched(
    cli: tuple[list[str], list[dict[str, Any] | None]],
    channel: MemoryChannel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, posted = cli
    escalation = channel.create(escalation_request(tool="move_file"))
    real_decide = Client.decide

    def rewrite_then_decide(self: Client, *a: Any, **kw: Any) -> Any:
        rewrite(channel, escalation)  # between the CLI's fetch and its post
        return real_decide(self, *a, **kw)

    monkeypatch.setattr(Client, "decide", rewrite_then_decide)
    assert main(["approve", escalation.id, "--yes", *args]) == 1
    assert CHANGED in capsys.readouterr().err
    assert channel.decisions == {}
    # Control: nothing changes between fetch and post: approved, bound to the digest fetched.
    monkeypatch.setattr(Client, "decide", real_decide)
    assert main(["approve", escalation.id, "--yes", *args]) == 0
    assert channel.decisions[escalation.id].by == "alice"
    assert posted[-1] is not None
    assert posted[-1]["digest"] == channel.records[escalation.id].digest()
