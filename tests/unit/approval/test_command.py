"""The CLI decides with the member's own token file and never names a decider itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ironcurtain.approval.client import Client
from ironcurtain.cli import main


def test_approve_sends_the_token_from_the_file_and_no_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "member_token"
    token_file.write_text("m" * 43 + "\n")
    sent: list[tuple[Client, str, dict[str, Any] | None]] = []

    def call(self: Client, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        sent.append((self, path, body))
        return {"message": "Recorded: approved by alice."}

    monkeypatch.setattr(Client, "call", call)
    assert main(["approve", "e1", "--yes", "--token-file", str(token_file), "--reason", "ok"]) == 0
    ((client, path, body),) = sent
    assert client.token == "m" * 43
    assert path == "/api/v1/escalations/e1/approve"
    assert body is not None
    assert "by" not in body


def test_the_default_token_file_is_the_members_own_in_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IRONCURTAIN_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("IRONCURTAIN_APPROVAL_TOKEN_FILE", str(tmp_path / "ignored"))
    with pytest.raises(SystemExit, match="shared login") as refused:
        main(["escalations"])
    assert str(tmp_path / "state" / "member_token") in str(refused.value)
