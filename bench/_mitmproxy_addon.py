"""The mitmproxy baseline: the same allowlist / endpoint / key-swap work as our proxy, as an addon.

Loaded by mitmdump in the benchmark's throwaway venv (not part of our package). Every upstream
connection is forced to the loopback fake vendor, so nothing ever leaves the machine.
"""

import hmac
import os

from mitmproxy import http

ALLOWED_HOSTS = {"api.anthropic.com"}
ENDPOINTS = {("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens")}
FAKE = os.environ["BENCH_FAKE_KEY"]
REAL = os.environ["BENCH_REAL_KEY"]
VENDOR = ("127.0.0.1", int(os.environ["BENCH_VENDOR_PORT"]))


class Guard:
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.request.host not in ALLOWED_HOSTS or flow.request.port != 443:
            flow.response = http.Response.make(403, b"host not allowed\n")
            return
        # Like our upstream override map: the tunnel's server is the loopback fake vendor
        # (TLS still verified for the CONNECT host's name, which is the client's SNI).
        flow.request.host, flow.request.port = VENDOR

    def server_connect(self, data) -> None:
        if data.server.address != VENDOR:
            data.server.address = VENDOR  # a safety net: loopback only, whatever happens

    def request(self, flow: http.HTTPFlow) -> None:
        path = flow.request.path.partition("?")[0]
        if (flow.request.method, path) not in ENDPOINTS:
            flow.response = http.Response.make(403, b'{"error":"endpoint"}')
            return
        key = flow.request.headers.get("x-api-key", "")
        if not hmac.compare_digest(key.encode(), FAKE.encode()):
            flow.response = http.Response.make(401, b'{"error":"key"}')
            return
        flow.request.headers["x-api-key"] = REAL

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # Pass SSE through as it arrives, like ours (mitmproxy buffers bodies by default).
        if flow.response.headers.get("content-type", "").startswith("text/event-stream"):
            flow.response.stream = True


addons = [Guard()]
