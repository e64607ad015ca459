"""`ironcurtain worker`: the RQ worker that runs our escalation jobs (its own process, non-root).

It connects as the worker's Redis user (a credential file, never the command line), reads
jobs as JSON and runs only the functions of jobs.ALLOWED; a thread beside it turns the inbox
(ids the sessions push) into jobs. It refuses to run as root. `--health` answers for a container
healthcheck: Redis answers and this host's worker is registered on the queue.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from . import redis_keys
from .settings import RedisSettings

if TYPE_CHECKING:  # loaded when the worker runs, not for every CLI command
    import redis
    from rq import Queue


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("worker", help="run the escalation notification worker (RQ)")
    parser.add_argument("--health", action="store_true", help="check a running worker, then exit")
    parser.set_defaults(handler=_run)


def refuse_root(euid: int) -> str:
    """Why the worker will not run as this user ('' when it may)."""
    return "worker: refusing to run as root (set the container's user)" if euid == 0 else ""


def _run(args: argparse.Namespace) -> int:
    from rq import Worker
    from rq.serializers import JSONSerializer

    from . import dispatch
    from .channel import connect
    from .jobs import GuardedJob

    problem = refuse_root(os.geteuid())
    if problem and not args.health:
        print(problem, file=sys.stderr)
        return 2
    settings = RedisSettings.from_environ()
    try:
        client = connect(
            settings.url,
            settings.credential_file,
            ca_file=settings.ca_file,
            timeout_s=10,
        )
    except (OSError, ValueError) as exc:
        print(f"worker: cannot read the Redis credential or CA file: {exc}", file=sys.stderr)
        return 2
    queue = dispatch.queue(client)
    if args.health:
        return _health(client, queue)
    name = f"ironcurtain-{socket.gethostname()}"
    # The auto-reviewer runs only with a key file; without one no review job is ever enqueued.
    reviewer = bool(os.environ.get("IRONCURTAIN_REVIEWER_KEY_FILE"))
    from .webhook import DEFAULT_FILE, load

    try:  # the team's webhook, if it configured one; a malformed file is refused loudly
        webhook = load(Path(os.environ.get("IRONCURTAIN_WEBHOOK_FILE", DEFAULT_FILE))) is not None
    except (OSError, ValueError) as exc:
        print(f"worker: the webhook file is unusable, no webhook is called: {exc}", file=sys.stderr)
        webhook = False
    stop = threading.Event()
    inbox = threading.Thread(
        target=dispatch.forever,
        args=(
            connect(
                settings.url,
                settings.credential_file,
                ca_file=settings.ca_file,
                timeout_s=10,
            ),
            stop,
        ),
        kwargs={"reviewer": reviewer, "webhook": webhook},
        name="inbox",
        daemon=True,
    )
    inbox.start()
    try:
        # Redis may come and go: the worker reconnects; the container restarts it if it dies.
        Worker(
            [queue],
            connection=client,
            name=name,
            job_class=GuardedJob,
            serializer=JSONSerializer,
        ).work(with_scheduler=False)
    finally:
        stop.set()
    return 0


def _health(client: redis.Redis, queue: Queue) -> int:
    import redis
    from rq import Worker

    try:
        client.ping()
        names = {w.name for w in Worker.all(queue=queue)}
    except redis.RedisError as exc:
        print(f"worker: Redis unreachable: {exc}", file=sys.stderr)
        return 1
    name = f"ironcurtain-{socket.gethostname()}"
    if name not in names:
        print(f"worker: {name} is not registered on {redis_keys.QUEUE}", file=sys.stderr)
        return 1
    return 0
