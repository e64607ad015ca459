"""The worker runs only our job functions, from JSON job data, and never as root."""

from __future__ import annotations

import importlib
import logging

import pytest
import redis
from rq.serializers import JSONSerializer

from ironcurtain.escalation.jobs import ALLOWED, GuardedJob, Refused, check, job_name
from ironcurtain.escalation.notify import notify
from ironcurtain.escalation.worker import refuse_root


@pytest.mark.parametrize(
    "name",
    ["os.system", "subprocess.run", "builtins.eval", "ironcurtain.escalation.notify.notice",
     "ironcurtain.escalation.notify.notify.__globals__", "", None],
)  # fmt: skip
def test_any_other_callable_is_refused_and_logged(name, caplog) -> None:
    with caplog.at_level(logging.ERROR), pytest.raises(Refused):
        check(name)
    assert "not one of our job functions" in caplog.text


def test_our_job_functions_are_allowed() -> None:
    assert check("ironcurtain.escalation.notify.notify") in ALLOWED
    assert check("ironcurtain.english.review.review") in ALLOWED


def test_every_allowed_name_resolves_to_a_function_of_that_name() -> None:
    # The reviewer's is a string (english/ is above escalation/): a rename must fail here.
    for name in ALLOWED:
        module, _, function = name.rpartition(".")
        assert getattr(importlib.import_module(module), function).__qualname__ == function


def test_a_job_function_given_as_an_object_is_stored_under_the_allowed_name() -> None:
    nowhere = redis.Redis(host="127.0.0.1", port=1)  # never used: creating a job needs no Redis
    job = GuardedJob.create(notify, args=["s.0123456789abcdef"], connection=nowhere)
    assert job.func_name == job_name(notify) == "ironcurtain.escalation.notify.notify"
    assert check(job.func_name) in ALLOWED


def test_a_job_naming_os_system_never_resolves_its_function() -> None:
    nowhere = redis.Redis(host="127.0.0.1", port=1)  # never used: resolving needs no Redis
    job = GuardedJob.create(
        "os.system", args=["touch /tmp/pwned"], connection=nowhere, serializer=JSONSerializer
    )
    with pytest.raises(Refused):
        job.func  # noqa: B018 - the property is the import
    ours = GuardedJob.create(
        "ironcurtain.escalation.notify.notify", args=["s.0123456789abcdef"],
        connection=nowhere, serializer=JSONSerializer,
    )  # fmt: skip
    assert ours.func.__name__ == "notify"


def test_the_worker_refuses_to_run_as_root() -> None:
    assert "refusing to run as root" in refuse_root(0)
    assert refuse_root(10001) == ""
