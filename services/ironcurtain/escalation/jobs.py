"""The worker's job functions: a fixed allowlist; any other callable is refused and logged.

RQ would import and call whatever dotted name a job's data holds. Here the name is checked
against the allowlist before anything is imported, and job data is JSON (rq.serializers), so a
job can neither name a Python object nor carry a pickle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rq.job import Job

from . import notify, webhook

logger = logging.getLogger(__name__)


def job_name(func: Callable[..., object]) -> str:
    """The dotted name RQ stores for a job function given as an object (and imports again)."""
    return f"{func.__module__}.{func.__qualname__}"


# The optional auto-reviewer (off by default) is the one job named, not referenced: it lives in
# english/, above this layer, with the LLM client (test_jobs.py checks that the name resolves).
REVIEW_JOB = "ironcurtain.english.review.review"
ALLOWED = frozenset({job_name(notify.notify), job_name(webhook.deliver), REVIEW_JOB})


class Refused(Exception):
    """A job naming a function that is not ours."""


def check(func_name: str | None) -> str:
    if func_name not in ALLOWED:
        logger.error("refusing an RQ job that names %r: not one of our job functions", func_name)
        raise Refused(f"{func_name!r} is not one of IronCurtain's job functions")
    return func_name


class GuardedJob(Job):
    """A Job whose function is resolved only if it is on the allowlist."""

    @property
    def func(self) -> Any:
        check(self.func_name)
        if self.instance is not None:
            raise Refused("jobs on methods of objects are not ours")
        return super().func

    def _no_callback(self, name: str) -> None:
        """We set no callbacks: one in a job's data is not ours, and is never imported."""
        if getattr(self, f"_{name}_callback_name", None):
            logger.error("ignoring the %s callback of RQ job %s: not ours", name, self.id)

    @property
    def success_callback(self) -> Any:
        self._no_callback("success")
        return None

    @property
    def failure_callback(self) -> Any:
        self._no_callback("failure")
        return None

    @property
    def stopped_callback(self) -> Any:
        self._no_callback("stopped")
        return None
