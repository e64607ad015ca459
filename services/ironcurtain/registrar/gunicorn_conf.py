"""gunicorn settings: `gunicorn -c python:ironcurtain.registrar.gunicorn_conf` (TLS always)."""

from __future__ import annotations

import os

wsgi_app = "ironcurtain.registrar.app:create_app()"
bind = os.environ.get("IRONCURTAIN_REGISTRAR_BIND", "0.0.0.0:8443")
# Certificate of the team CA naming the team host; the key is mounted into this container alone.
certfile = os.environ.get("IRONCURTAIN_REGISTRAR_CERT", "/run/secrets/registrar_tls_cert")
keyfile = os.environ.get("IRONCURTAIN_REGISTRAR_KEY", "/run/secrets/registrar_tls_key")
workers = 1
worker_class = "gthread"
threads = 4
timeout = 30
limit_request_line = 4096
limit_request_fields = 50
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'  # never the Authorization header
proc_name = "ironcurtain-registrar"
control_socket_disable = True
forwarded_allow_ips = ""
