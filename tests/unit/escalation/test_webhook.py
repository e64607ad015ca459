"""The team's webhook: its config file (an allowlist), a Slack-compatible message that carries no
argument values and cannot be made to link elsewhere, delivered to a local receiver; redirects
are not followed; the job is one of the worker's allowed functions."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ironcurtain.escalation.jobs import ALLOWED, check
from ironcurtain.escalation.labels import Registration
from ironcurtain.escalation.record import Escalation
from ironcurtain.escalation.types import EscalationRequest
from ironcurtain.escalation.webhook import WebhookConfig, body, load, post, slack_body

SECRET = "hunter2-token"
REGISTERED = Registration("wt-main", "claude-code", "")


def escalation(**extra: Any) -> Escalation:
    fields: dict[str, Any] = {
        "session_id": "s1",
        "worktree": "wt-main",
        "agent": "claude-code",
        "server": "filesystem",
        "tool": "write_file",
        "arguments": {"path": "/work/a.py", "content": SECRET},
        "rule": "writes-need-a-human",
        "reason": "writes need a human",
        **extra,
    }
    return Escalation.from_request(
        EscalationRequest(**fields), id="s1.0123456789abcdef", now=1764748800.0, timeout_s=60
    )


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"format": "slack"}',
        '{"url": "ftp://hooks.example/x"}',
        '{"url": "file:///etc/passwd"}',
        '{"url": "https://hooks.example/a b"}',
        '{"url": "https://hooks.example/\\u202e"}',
        '{"url": "https://hooks.example/x", "format": "html"}',
        '{"url": "https://hooks.example/x", "headers": {"X": "1"}}',
    ],
)
def test_a_malformed_webhook_file_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="webhook"):
        WebhookConfig.parse(text)


def test_no_file_means_no_webhook_and_the_url_is_never_in_the_repr(tmp_path: Any) -> None:
    assert load(tmp_path / "webhook.json") is None
    (tmp_path / "webhook.json").write_text('{"url": "https://hooks.example/T0/secret"}')
    config = load(tmp_path / "webhook.json")
    assert config == WebhookConfig("https://hooks.example/T0/secret", "slack")
    assert "secret" not in repr(config)


def test_the_slack_message_carries_no_arguments_and_no_forged_link() -> None:
    hostile = escalation(rule="<https://evil.example|click> & \u202e", worktree="wt<x>")
    message = slack_body(hostile, "http://127.0.0.1:8470/", registration=None)
    text = json.dumps(message)
    assert SECRET not in text
    assert "<https://evil.example" not in text
    assert "&lt;https://evil.example|click&gt; &amp; \\u202e" in message["text"]
    assert message["text"].endswith(
        "<http://127.0.0.1:8470/escalations/s1.0123456789abcdef|review>"
    )
    assert message["blocks"][0]["text"]["text"] == "*filesystem__write_file* needs approval"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    got: list[tuple[str, bytes]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            if self.path == "/moved":
                self.send_response(307)
                self.send_header("Location", "/elsewhere")
            else:
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    yield f"http://127.0.0.1:{server.server_port}", got
    server.shutdown()
    server.server_close()


def test_a_local_receiver_gets_the_slack_json(
    receiver: tuple[str, list[tuple[str, bytes]]],
) -> None:
    url, got = receiver
    config = WebhookConfig(f"{url}/hook")
    message_body = body(config, escalation(), "http://127.0.0.1:8470", registration=REGISTERED)
    assert post(config, message_body) == 200
    ((path, sent),) = got
    assert path == "/hook"
    message = json.loads(sent)
    assert "filesystem__write_file needs approval" in message["text"]
    assert SECRET.encode() not in sent


def test_a_redirecting_webhook_is_not_followed(
    receiver: tuple[str, list[tuple[str, bytes]]],
) -> None:
    url, got = receiver
    with pytest.raises(OSError, match="307"):
        post(WebhookConfig(f"{url}/moved"), b"{}")
    assert [p for p, _ in got] == ["/moved"]


def test_the_plain_format_is_the_old_body() -> None:
    config = WebhookConfig("https://hooks.example/x", "plain")
    sent = json.loads(body(config, escalation(), "http://127.0.0.1:8470", registration=None))
    assert sent["id"] == "s1.0123456789abcdef"
    assert "arguments" not in sent


def test_the_webhook_job_is_one_of_ours() -> None:
    name = "ironcurtain.escalation.webhook.deliver"
    assert name in ALLOWED
    assert check(name) == name


def test_the_webhook_names_the_registered_worktree_and_marks_a_claimed_one() -> None:
    """A session labelling its escalation with another worktree (the one a colleague trusts)
    is named in the team's channel by its registered worktree, the claim marked as its own."""
    forged = escalation(worktree="wt-b\u202e<!here>")
    message = slack_body(forged, "http://127.0.0.1:8470", registration=Registration("wt-a", "", ""))
    claimed = 'wt-a (the session claims "wt-b\\u202e&lt;!here&gt;")'
    assert f"worktree {claimed}," in message["text"]
    assert message["blocks"][1]["fields"][1]["text"] == f"*Worktree*\n{claimed}"
    unverified = slack_body(forged, "http://127.0.0.1:8470", registration=None)["text"]
    assert 'worktree unverified: no registration (the session claims "wt-b' in unverified
    plain = json.loads(
        body(
            WebhookConfig("https://hooks.example/x", "plain"), forged, "http://x", registration=None
        )
    )
    assert (plain["worktree"], plain["registered"]) == ("", False)
    assert plain["claimed_worktree"] == "wt-b\u202e<!here>"
    honest = slack_body(escalation(), "http://127.0.0.1:8470", registration=REGISTERED)
    assert "worktree wt-main," in honest["text"]  # control: plainly
    assert "claims" not in honest["text"]
