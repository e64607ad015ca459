"""gunicorn settings: `gunicorn -c python:ironcurtain.approval.gunicorn_conf`.

Live updates are Server-Sent Events (events.py): each open stream holds one gthread thread for
up to two minutes, so at most `sse_slots()` of a worker's threads may stream (default half of
them); the rest serve pages and the API. The workers share the members file (read-only) and
the web-session folder (the container's tmpfs).
"""

from __future__ import annotations

import os

wsgi_app = "ironcurtain.approval.app:create_app()"
bind = os.environ.get("IRONCURTAIN_APPROVAL_BIND", "127.0.0.1:8470")
workers = int(os.environ.get("IRONCURTAIN_APPROVAL_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("IRONCURTAIN_APPROVAL_THREADS", "8"))


def sse_slots() -> int:
    """Live-update streams one worker serves at once (each holds a thread)."""
    default = max(1, threads // 2)
    wanted = int(os.environ.get("IRONCURTAIN_APPROVAL_SSE_SLOTS", str(default)))
    return max(1, min(wanted, threads - 1 if threads > 1 else 1))


timeout = 30
graceful_timeout = 10
keepalive = 5
max_requests = 2000
max_requests_jitter = 200
limit_request_line = 4096
limit_request_fields = 50
accesslog = "-"
errorlog = "-"
loglevel = "info"
# The Authorization header never appears in the default access log format; keep it that way.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
proc_name = "ironcurtain-approval"
control_socket_disable = True  # gunicorn >= 27: no runtime control socket (read-only root fs)
forwarded_allow_ips = ""  # no proxy in front: never trust X-Forwarded-*
