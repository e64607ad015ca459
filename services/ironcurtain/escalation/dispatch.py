"""The worker's inbox: sessions push escalation ids, the worker checks them and enqueues our jobs.

A session may only push onto the inbox (acl.py): it never touches RQ's keys, so it cannot name a
job function. What it pushes is only a pointer: the worker reads the record from the keys of the
session the id names (which only that session writes), so a forged entry can at most point at a
genuine record again.
"""

from __future__ import annotations

import logging
import threading

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from . import redis_keys, replies
from .channel import Channel
from .jobs import REVIEW_JOB
from .notify import notify
from .record import Decision, Escalation
from .types import Verdict
from .webhook import deliver

logger = logging.getLogger(__name__)

MAX_ENTRY = 200  # an id and a scope id; anything longer is not ours


def queue(client: redis.Redis) -> Queue:
    """The RQ queue, JSON-serialized (no pickle: a job's data cannot name a Python object)."""
    return Queue(redis_keys.QUEUE, connection=client, serializer=JSONSerializer)


def handle(
    channel: Channel, jobs: Queue, entry: bytes, *, reviewer: bool, webhook: bool = False
) -> str:
    """One inbox entry: `ID` (a new escalation) or `ID SCOPE_ID` (a remembered approval).

    Returns what was done (for logs and tests)."""
    words = entry[:MAX_ENTRY].decode("ascii", "replace").split(" ")
    if len(entry) > MAX_ENTRY or len(words) > 2:
        return "ignored"
    found = channel.get(words[0])
    if not isinstance(found, Escalation):
        return "ignored"
    if not channel.first_handling(found.id):  # pushed again: one notice, job, history line
        return "duplicate"
    if len(words) == 2:
        return _remembered(channel, found, words[1])
    if channel.decision(found.id) is not None:
        return "decided"
    timeout = max(1, int(found.deadline - found.created_at))
    jobs.enqueue(notify, found.id, job_timeout=30, ttl=timeout, result_ttl=60)
    done = "notify"
    if webhook:  # the team configured one (webhook.py): its own job, so a slow hook delays nothing
        jobs.enqueue(deliver, found.id, job_timeout=30, ttl=timeout, result_ttl=60)
        done += "+webhook"
    if reviewer and channel.auto_review(found.session_id):
        # It may only approve, first-wins; without it a human decides as always.
        jobs.enqueue(REVIEW_JOB, found.id, job_timeout=timeout, ttl=timeout, result_ttl=60)
        return done + "+review"
    return done


def _remembered(channel: Channel, escalation: Escalation, scope_id: str) -> str:
    """A remembered approval into the history, if a human really chose a scope that covers it."""
    for scope in channel.remembered(escalation.session_id):
        if scope.id == scope_id and scope.covers(
            escalation.server,
            escalation.tool,
            escalation.arguments_digest,
            escalation.paths,
            escalation.domains,
        ):
            decision = Decision(
                escalation.id, Verdict.APPROVED, f"remembered:{scope.id}", escalation.created_at,
                f"approved earlier for {scope.describe()}", scope, escalation.digest(),
            )  # fmt: skip
            channel.record_remembered(escalation, decision)
            return "remembered"
    logger.warning("inbox: %s names no remembered scope that covers it", escalation.id)
    return "ignored"


def forever(
    client: redis.Redis, stop: threading.Event, *, reviewer: bool, webhook: bool = False
) -> None:
    """The worker's dispatch loop (a thread next to the RQ worker): blocks on the inbox."""
    channel = Channel(client)
    jobs = queue(client)
    while not stop.is_set():
        try:
            popped = client.blpop([redis_keys.INBOX], timeout=1)
            if popped is not None:
                entry = replies.raw(popped[1])
                handle(channel, jobs, entry, reviewer=reviewer, webhook=webhook)
        except redis.RedisError as exc:  # Redis may come and go: try again
            logger.warning("inbox: %s", exc)
            stop.wait(1.0)
        except Exception:  # one bad entry must not stop the loop
            logger.exception("inbox: an entry failed")
