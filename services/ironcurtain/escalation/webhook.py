"""The team's webhook notifier: a Slack-compatible message for every new escalation (an RQ job).

Per team: `$IRONCURTAIN_SHARED_DIR/notify/webhook.json` (`{"url": "https://...", "format":
"slack"}`), mounted read-only into the worker only. A webhook URL is a credential (whoever holds
it may post to the channel): a file, never the environment, never logged. The message carries
no argument values (they leave the machine's trust boundary): the call, session, worktree, rule,
deadline and a link to the page. Text is neutral (bidi and zero-width characters as escapes)
and Slack's control characters `& < >` are escaped, so a hostile rule cannot make a link.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import labels
from .labels import Registration
from .record import Escalation
from .terminal import label_text, neutral

logger = logging.getLogger(__name__)

DEFAULT_FILE = "/run/notify/webhook.json"
TIMEOUT_S = 5.0
FORMATS = ("slack", "plain")
_KEYS = frozenset({"url", "format"})


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    format: str = "slack"

    def __repr__(self) -> str:  # the URL is a credential
        return f"WebhookConfig(format={self.format!r})"

    @classmethod
    def parse(cls, text: str) -> WebhookConfig:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the webhook file is not JSON: {exc}") from None
        if not isinstance(data, dict) or set(data) - _KEYS or "url" not in data:
            raise ValueError('the webhook file holds {"url": "https://...", "format": "slack"}')
        url, form = data["url"], data.get("format", "slack")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ValueError("the webhook url must be http(s)")
        if len(url) > 2000 or any(c.isspace() or ord(c) < 0x21 or ord(c) > 0x7E for c in url):
            raise ValueError("the webhook url must be plain ASCII, no spaces, at most 2000 chars")
        if form not in FORMATS:
            raise ValueError(f"the webhook format must be one of {', '.join(FORMATS)}")
        return cls(url, form)


def load(path: Path) -> WebhookConfig | None:
    """The team's webhook, or None when none is configured (no file)."""
    try:
        return WebhookConfig.parse(path.read_text())
    except FileNotFoundError:
        return None


def _mrkdwn(shown: str) -> str:
    """Text already neutral, escaped for Slack's mrkdwn (no link or mention can be made)."""
    return shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(text: str) -> str:
    return _mrkdwn(neutral(text))


def worktree_text(escalation: Escalation, registration: Registration | None) -> str:
    """The worktree the session was registered with; the record's own, where it differs, only
    as the session's claim, marked (labels.py): neutral text, as the CLI shows it."""
    return label_text(labels.of(registration, {"worktree": escalation.worktree})[0])


def slack_body(
    escalation: Escalation, approval_url: str, *, registration: Registration | None
) -> dict[str, Any]:
    """A Slack incoming-webhook message (`text` plus blocks); other chat tools read `text`.
    `registration`: the session's (Channel.registrations), whose worktree it names."""
    link = f"{approval_url.rstrip('/')}/escalations/{escalation.id}"
    deadline = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(escalation.deadline))
    call, session = _slack(escalation.call), _slack(escalation.session_id)
    worktree, rule = _mrkdwn(worktree_text(escalation, registration)), _slack(escalation.rule)
    text = (
        f"IronCurtain: {call} needs approval (session {session}, worktree {worktree}, "
        f"rule {rule}; deadline {deadline})"
    )
    return {
        "text": f"{text} <{link}|review>",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{call}* needs approval"}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Session*\n{session}"},
                    {"type": "mrkdwn", "text": f"*Worktree*\n{worktree}"},
                    {"type": "mrkdwn", "text": f"*Rule*\n{rule}"},
                    {"type": "mrkdwn", "text": f"*Deadline*\n{deadline}"},
                ],
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|Review it>"}},
        ],
    }


def body(
    config: WebhookConfig,
    escalation: Escalation,
    approval_url: str,
    *,
    registration: Registration | None,
) -> bytes:
    if config.format == "slack":
        return json.dumps(slack_body(escalation, approval_url, registration=registration)).encode()
    from .notify import webhook_body

    return webhook_body(escalation, approval_url, registration=registration)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a webhook that redirects is not followed (nor its body re-sent)


def post(config: WebhookConfig, data: bytes, timeout_s: float = TIMEOUT_S) -> int:
    """POST the message; the status. Redirects are not followed; errors raise OSError."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(  # noqa: S310 - scheme checked in parse
        config.url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with opener.open(request, timeout=timeout_s) as response:
            response.read(1024)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise OSError(f"the webhook answered {exc.code}") from None


def deliver(escalation_id: str) -> str:
    """The RQ job (jobs.ALLOWED): the team's webhook message for one escalation."""
    from rq import get_current_job

    from .channel import Channel

    job = get_current_job()
    if job is None:
        raise RuntimeError("deliver runs as an RQ job")
    config = load(Path(os.environ.get("IRONCURTAIN_WEBHOOK_FILE", DEFAULT_FILE)))
    if config is None:
        return "no webhook"
    channel = Channel(job.connection)
    escalation = channel.get(escalation_id)
    if not isinstance(escalation, Escalation) or channel.decision(escalation_id) is not None:
        return "gone"
    approval_url = os.environ.get("IRONCURTAIN_APPROVAL_URL", "http://127.0.0.1:8470")
    try:
        registration = channel.registrations([escalation.session_id]).get(escalation.session_id)
        post(config, body(config, escalation, approval_url, registration=registration))
    except OSError as exc:  # a courtesy: logged, never retried, the URL never named
        logger.warning("webhook for %s failed: %s", escalation_id, type(exc).__name__)
        return "failed"
    return "sent"
