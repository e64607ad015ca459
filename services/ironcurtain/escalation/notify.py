"""The RQ job run for every new escalation: a terminal line for the session.

Runs in the worker process (`ironcurtain worker`). Notifications are a courtesy: the escalation is
already stored and listed. The team's webhook is a job of its own (webhook.py), configured by a
file: a webhook URL is a credential, and no environment variable is read for it.
"""

from __future__ import annotations

import json
import logging
import os

from rq import get_current_job

from .channel import Channel
from .labels import Registration
from .record import Escalation

logger = logging.getLogger(__name__)

NOTICE_PATHS = 3  # paths named in a notice (the web UI shows every argument)
NOTICE_PATH_CHARS = 80


def notice(escalation: Escalation, approval_url: str) -> str:
    """The line printed in the session's terminal (a bell first, so a human notices).

    It names the paths the call touches, never other argument values (file contents, tokens):
    those are for the approval UI. The session shows it with controls escaped.
    """
    shown = [
        p if len(p) <= NOTICE_PATH_CHARS else p[: NOTICE_PATH_CHARS - 1] + "\u2026"
        for p in escalation.paths[:NOTICE_PATHS]
    ]
    if len(escalation.paths) > NOTICE_PATHS:
        shown.append(f"+{len(escalation.paths) - NOTICE_PATHS} more")
    on = f" on {', '.join(shown)}" if shown else ""
    return (
        f"\a[ironcurtain] escalation {escalation.id}: {escalation.call} needs approval{on} "
        f"(rule {escalation.rule}: {escalation.reason}) -> {approval_url.rstrip('/')}"
        f"/escalations/{escalation.id} or `ironcurtain approve {escalation.id}` / "
        f"`ironcurtain deny {escalation.id}`"
    )


def webhook_body(
    escalation: Escalation, approval_url: str, *, registration: Registration | None
) -> bytes:
    """The flat body of a webhook file with `"format": "plain"` (webhook.py): `worktree` as the
    session was registered (empty when it was not: `registered` false), the record's own as
    `claimed_worktree`, the session's claim (labels.py)."""
    # No arguments: a webhook leaves the machine's trust boundary; the UI shows them.
    return json.dumps(
        {
            "id": escalation.id,
            "session_id": escalation.session_id,
            "worktree": registration.worktree if registration else "",
            "registered": registration is not None,
            "claimed_worktree": escalation.worktree,
            "call": escalation.call,
            "rule": escalation.rule,
            "reason": escalation.reason,
            "deadline": escalation.deadline,
            "url": f"{approval_url.rstrip('/')}/escalations/{escalation.id}",
        }
    ).encode()


def notify(escalation_id: str) -> str:
    job = get_current_job()
    if job is None:
        raise RuntimeError("notify runs as an RQ job")
    channel = Channel(job.connection)
    escalation = channel.get(escalation_id)
    if not isinstance(escalation, Escalation) or channel.decision(escalation_id) is not None:
        return "gone"
    approval_url = os.environ.get("IRONCURTAIN_APPROVAL_URL", "http://127.0.0.1:8470")
    channel.announce(escalation.session_id, notice(escalation, approval_url))
    return "announced"
