"""The CLI decides with the member's own token file and never names a decider itself."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from ironcurtain.approval import present
from ironcurtain.cli import main
from ironcurtain.people.client import ApiError, Client

from .conftest import MemoryChannel, bearer, escalation_request


def test_approve_sends_the_token_from_the_file_and_no_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "member_token"
    token_file.write_text("m" * 43 + "\n")
    sent: list[tuple[Client, str, dict[str, Any] | None]] = []

    def call(self: Client, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        sent.append((self, path, body))
        if method == "GET":
            return {"escalation": {"id": "e1", "digest": "d" * 64}, "choices": []}
        return {"message": "Recorded: approved by alice."}

    monkeypatch.setattr(Client, "call", call)
    assert main(["approve", "e1", "--yes", "--token-file", str(token_file), "--reason", "ok"]) == 0
    (_, fetched, _), (client, path, body) = sent
    assert fetched == "/api/v1/escalations/e1"
    assert client.token == "m" * 43
    assert path == "/api/v1/escalations/e1/approve"
    assert body is not None
    assert "by" not in body
    assert body["digest"] == "d" * 64  # --yes: bound to what it fetched


def test_the_default_token_file_is_the_members_own_in_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IRONCURTAIN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("IRONCURTAIN_APPROVAL_TOKEN_FILE", str(tmp_path / "ignored"))
    with pytest.raises(SystemExit, match="shared login") as refused:
        main(["escalations"])
    assert str(tmp_path / "state" / "member_token") in str(refused.value)


# The commands against the real API (Flask's test client behind `Client.call`), as alice.


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def as_alice(
    client: FlaskClient, tokens: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    def call(self: Client, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = client.open(path, method=method, json=body, headers=bearer(self.token))
        data = response.get_json() or {}
        if response.status_code >= 400:
            raise ApiError(response.status_code, str(data.get("message") or data["error"]), data)
        return data

    monkeypatch.setattr(Client, "call", call)
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal unless a test says so
    token_file = tmp_path / "alice_token"
    token_file.write_text(tokens["alice"] + "\n")
    return ["--token-file", str(token_file)]


def answer(monkeypatch: pytest.MonkeyPatch, reply: str | None) -> list[str]:
    """stdin is a terminal; the human types `reply` (None: end of input)."""
    prompts: list[str] = []

    def read(prompt: str = "") -> str:
        prompts.append(prompt)
        if reply is None:
            raise EOFError
        return reply

    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr("builtins.input", read)
    return prompts


def test_escalations_lists_one_neutral_line_each(
    as_alice: list[str],
    channel: MemoryChannel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the width the lines are cut to
    channel.create(escalation_request())
    channel.create(
        escalation_request(
            tool="fetch",
            arguments={"url": "https://ok.example@evil.example/\u202egpj.exe"},
            paths=(),
            domains=("evil.example",),
            session_id="s2\x1b]0;x\x07",
        )
    )
    assert main(["escalations", *as_alice]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # latest deadline first: the second one created comes first
    assert "filesystem__write_file  [writes-need-a-human]  /work/src/a.py" in lines[1]
    assert "(host evil.example)" in lines[0]
    assert "\\u202e" in lines[0]
    assert "s2\\x1b]0;x\\x07" in lines[0]
    assert not any(c in "".join(lines) for c in "\x1b\x07\u202e")


def test_show_prints_everything_of_one_escalation(
    as_alice: list[str], channel: MemoryChannel, capsys: pytest.CaptureFixture[str]
) -> None:
    e = channel.create(escalation_request(arguments_digest="d" * 64))
    assert main(["show", e.id, *as_alice]) == 0
    out = capsys.readouterr().out
    for part in ("rule      writes-need-a-human", 'path: "/work/src/a.py"', "paths under"):
        assert part in out
    assert "exactly" in out  # the exact-call scope, offered as there is a digest


def test_show_of_an_unknown_id_is_refused(
    as_alice: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "nope", *as_alice]) == 1
    assert "no such escalation" in capsys.readouterr().err


def test_approve_without_a_terminal_or_yes_is_refused(
    as_alice: list[str], channel: MemoryChannel, capsys: pytest.CaptureFixture[str]
) -> None:
    e = channel.create(escalation_request())
    assert main(["approve", e.id, *as_alice]) == 1
    assert "pass --yes" in capsys.readouterr().err
    assert channel.decisions == {}


@pytest.mark.parametrize("reply", ["", "n", "no", "Y es", "yy", None])
def test_approve_decides_nothing_unless_the_human_says_yes(
    as_alice: list[str],
    channel: MemoryChannel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    reply: str | None,
) -> None:
    e = channel.create(escalation_request())
    prompts = answer(monkeypatch, reply)
    assert main(["approve", e.id, *as_alice]) == 1
    assert prompts == ["approve? [y/N] "]
    assert "/work/src/a.py" in capsys.readouterr().out  # the summary was shown first
    assert channel.decisions == {}


@pytest.mark.parametrize("reply", ["y", "Y", "yes", " yes "])
def test_approve_after_yes_on_the_terminal_is_recorded_as_alice(
    as_alice: list[str], channel: MemoryChannel, monkeypatch: pytest.MonkeyPatch, reply: str
) -> None:
    e = channel.create(escalation_request())
    answer(monkeypatch, reply)
    assert main(["approve", e.id, *as_alice]) == 0
    assert channel.decisions[e.id].by == "alice"


def test_deny_needs_no_confirmation(as_alice: list[str], channel: MemoryChannel) -> None:
    e = channel.create(escalation_request())
    assert main(["deny", e.id, "--reason", "no", *as_alice]) == 0
    assert channel.decisions[e.id].verdict.value == "denied"


def test_remember_without_a_value_lists_the_scopes_and_decides_nothing(
    as_alice: list[str], channel: MemoryChannel, capsys: pytest.CaptureFixture[str]
) -> None:
    e = channel.create(escalation_request())
    (scope,) = present.scope_options(e)
    assert main(["approve", e.id, "--remember", *as_alice]) == 0
    assert f"  {scope.id}  {scope.describe()}" in capsys.readouterr().out.splitlines()
    assert channel.decisions == {}


def test_remember_a_scope_approves_and_keeps_it(
    as_alice: list[str], channel: MemoryChannel
) -> None:
    e = channel.create(escalation_request())
    (scope,) = present.scope_options(e)
    assert main(["approve", e.id, "--remember", scope.id, "--yes", *as_alice]) == 0
    assert channel.remembered == {"s1": {scope.id: scope}}


def test_a_scope_not_offered_is_refused_before_and_by_the_service(
    as_alice: list[str],
    channel: MemoryChannel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    e = channel.create(escalation_request())
    assert main(["approve", e.id, "--remember", "0" * 16, "--yes", *as_alice]) == 1
    assert "not offered" in capsys.readouterr().err
    prompts = answer(monkeypatch, "y")
    assert main(["approve", e.id, "--remember", "0" * 16, *as_alice]) == 1
    assert prompts == []  # refused before asking
    assert channel.decisions == {}


def test_history_shows_decisions_newest_first_with_who(
    as_alice: list[str], channel: MemoryChannel, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = channel.create(escalation_request()), channel.create(escalation_request())
    assert main(["deny", first.id, *as_alice]) == 0
    assert main(["approve", second.id, "--yes", *as_alice]) == 0
    capsys.readouterr()
    assert main(["history", *as_alice]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2:5] for line in lines] == [
        ["approved", "by", "alice"],
        ["denied", "by", "alice"],
    ]
    assert second.id in lines[0]


def test_revoke_finds_the_session_and_removes_the_scope(
    as_alice: list[str], channel: MemoryChannel, capsys: pytest.CaptureFixture[str]
) -> None:
    e = channel.create(escalation_request())
    (scope,) = present.scope_options(e)
    assert main(["approve", e.id, "--remember", scope.id, "--yes", *as_alice]) == 0
    assert main(["revoke", scope.id, *as_alice]) == 0
    assert channel.remembered == {"s1": {}}
    assert main(["revoke", scope.id, *as_alice]) == 1
    assert "no session remembers" in capsys.readouterr().err


def test_revoke_of_a_scope_two_sessions_remember_needs_the_session(
    as_alice: list[str], channel: MemoryChannel, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [channel.create(escalation_request(session_id=s)).id for s in ("s1", "s2")]
    (scope,) = present.scope_options(channel.records[ids[0]])
    for i in ids:
        assert main(["approve", i, "--remember", scope.id, "--yes", *as_alice]) == 0
    assert main(["revoke", scope.id, *as_alice]) == 1
    assert "pass --session" in capsys.readouterr().err
    assert main(["revoke", scope.id, "--session", "s2", *as_alice]) == 0
    assert scope.id in channel.remembered["s1"]
    assert channel.remembered["s2"] == {}


def test_revoke_needs_a_bearer_token(client: FlaskClient, channel: MemoryChannel) -> None:
    channel.remembered["s1"] = {}
    assert client.delete("/api/v1/sessions/s1/remembered/abc").status_code == 401
    assert client.get("/api/v1/history").status_code == 401


def test_approve_shows_the_registered_labels_and_marks_a_claim_before_asking(
    as_alice: list[str],
    channel: MemoryChannel,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    channel.register("s1", worktree="wt-a", agent="claude-code", task="fix it")
    e = channel.create(escalation_request(worktree="wt-b"))  # s1 claims another worktree
    answer(monkeypatch, "n")
    assert main(["approve", e.id, *as_alice]) == 1
    out = capsys.readouterr().out
    assert 'session s1  worktree wt-a (the session claims "wt-b")  agent claude-code' in out
    assert main(["show", e.id, *as_alice]) == 0
    assert 'worktree wt-a (the session claims "wt-b")' in capsys.readouterr().out
