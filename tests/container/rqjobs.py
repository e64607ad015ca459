"""Our RQ jobs run in the test's own process, as `ironcurtain worker` runs them (GuardedJob, JSON),
for one burst."""

from __future__ import annotations

import redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from ironcurtain.escalation.jobs import GuardedJob


class BurstWorker(SimpleWorker):
    """A worker without RQ's command channel (pub/sub for stop/kill commands, which one burst never
    gets). Its listener thread, when stopped, can sit up to 60 s in a socket read: longer than the
    jobs' 60 s result TTL, so their results were gone before a test read them (NoSuchJobError)."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def run_burst(queue: Queue, connection: redis.Redis) -> bool:
    """Run every job queued now; True if any ran."""
    worker = BurstWorker(
        [queue], connection=connection, job_class=GuardedJob, serializer=JSONSerializer
    )
    return bool(worker.work(burst=True))
