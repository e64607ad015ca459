"""`ironcurtain worker`: the RQ worker that runs escalation notifications (its own process).

It reads the Redis password from a file (never the command line, where `rq worker --url` would
put it); `--health` answers for a container healthcheck: Redis answers and this host's worker is
registered on the queue.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import TYPE_CHECKING

from ..approval.settings import Settings
from . import keys

if TYPE_CHECKING:  # loaded when the worker runs, not for every CLI command
    import redis
    from rq import Queue


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("worker", help="run the escalation notification worker (RQ)")
    parser.add_argument("--health", action="store_true", help="check a running worker, then exit")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from rq import Queue, Worker

    from .channel import connect

    settings = Settings.from_environ()
    try:
        client = connect(settings.redis_url, settings.redis_password_file, timeout_s=10)
    except OSError as exc:
        print(f"worker: cannot read the Redis password: {exc}", file=sys.stderr)
        return 2
    queue = Queue(keys.QUEUE, connection=client)
    if args.health:
        return _health(client, queue)
    name = f"ironcurtain-{socket.gethostname()}"
    # Redis may come and go: the worker reconnects; the container restarts it if it dies.
    Worker([queue], connection=client, name=name).work(with_scheduler=False)
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
        print(f"worker: {name} is not registered on {keys.QUEUE}", file=sys.stderr)
        return 1
    return 0
