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

    def server_connect(self, data) -> None:
        data.server.address = VENDOR  # loopback only, whatever the request said

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
        flow.response.stream = True  # pass SSE through as it arrives, like ours


addons = [Guard()]
