"""A real proxy and a real fake vendor on loopback, each in a background event loop.

Tests drive them with real clients (SDKs, curl) and with raw sockets for the attacks; raw
responses are parsed with h11, never split by hand.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11

from ironcurtain.fakellm import certs
from ironcurtain.fakellm.server import FakeVendor
from ironcurtain.mitm import app, ca, providers, settings
from ironcurtain.mitm.fake_keys import new_fake_key
from ironcurtain.mitm.server import Proxy

HOSTS = ("api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com")
REAL = {
    "anthropic": "sk-ant-api03-REAL-anthropic-key-never-shown",
    "openai": "sk-proj-REAL-openai-key-never-shown",
    "google": "AIzaSy-REAL-google-key-never-shown",
}


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@dataclass
class Stack:
    dir: Path
    loop: LoopThread
    vendor: FakeVendor
    proxy: Proxy
    port: int
    ca_file: Path
    fakes: dict[str, str]
    audit_path: Path
    _cm: Any = field(default=None, repr=False)
    vendor_ca: Path | None = None  # trusts the fake vendor (its token endpoint too)
    vendor_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def audit(self) -> list[dict[str, Any]]:
        """The complete lines: one the proxy's thread is still writing has no newline yet."""
        text = self.audit_path.read_text()
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]

    def audit_until(self, predicate: Any, deadline_s: float = 5.0) -> list[dict[str, Any]]:
        """The audit once its last line satisfies `predicate` (the proxy writes from its thread)."""
        end = time.monotonic() + deadline_s
        while True:
            lines = self.audit()
            if lines and predicate(lines[-1]):
                return lines
            if time.monotonic() > end:
                raise AssertionError(f"audit never matched; last line: {lines[-1:]}")
            self.loop.run(asyncio.sleep(0.005))  # let the proxy's loop run, then look again

    def until(self, condition: Any, deadline_s: float = 5.0) -> None:
        """Wait for a condition on the proxy's state, letting its loop run between looks."""
        end = time.monotonic() + deadline_s
        while not condition():
            if time.monotonic() > end:
                raise AssertionError("condition not reached before the deadline")
            self.loop.run(asyncio.sleep(0.005))

    def open_gate(self) -> None:
        self.loop.call(self.vendor.release)

    def close_gate(self) -> None:
        self.loop.run(_reset_gate(self.vendor))

    def close(self) -> None:
        self.loop.run(self._cm.__aexit__(None, None, None))
        self.loop.run(self.vendor.close())
        self.loop.stop()


async def _reset_gate(vendor: FakeVendor) -> None:
    vendor.gate = asyncio.Event()


def start(directory: Path, untrusted: tuple[str, ...] = (), **overrides: Any) -> Stack:
    """CA, fake vendor (own CA), settings routed to the vendor, proxy on a free port."""
    loop = LoopThread()
    hosts = sorted(h for p in providers.builtin().values() for h in p.hosts)
    ca_dir = directory / "ca"
    if not (ca_dir / ca.KEY_FILE).exists():
        ca.init(ca_dir, hosts)
    # The fake vendor also answers for the subscription token hosts (the host refreshes there).
    token_hosts = [p.oauth.token_host for p in providers.builtin().values() if p.oauth]
    vendor_files = certs.write(directory / "vendor", [*hosts, *token_hosts])
    vendor_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    vendor_ctx.load_cert_chain(vendor_files.cert, vendor_files.key)
    vendor = FakeVendor()
    vport = loop.run(vendor.start(vendor_ctx))
    fakes = {}
    keys_doc: dict[str, Any] = {"claude-platform": {}}
    for name, real in REAL.items():
        secret = directory / "secrets" / name
        secret.parent.mkdir(exist_ok=True)
        secret.write_text(real + "\n")
        fakes[name] = new_fake_key(providers.builtin()[name].key_prefix)
        keys_doc[name] = {"fake": fakes[name], "real_file": str(secret)}
    doc: dict[str, Any] = {
        "session": "test-session",
        "listen": {"host": "127.0.0.1", "port": 0},
        "ca_dir": str(ca_dir),
        "audit": str(directory / "audit.jsonl"),
        "keys": keys_doc,
        "budget": {"tokens": None, "seconds": None, "cost_usd": None},
        "limits": {"header_timeout_s": 1.0, "response_timeout_s": 3.0, "max_body_bytes": 100_000},
        "upstream": {
            h: {"address": f"127.0.0.1:{vport}"}
            | ({} if h in untrusted else {"ca_file": str(vendor_files.ca)})
            for h in (*HOSTS, "platform.claude.com")
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    parsed = settings.parse(doc)
    cm = app.running(parsed, port=0)
    proxy, port = loop.run(cm.__aenter__())
    return Stack(
        directory,
        loop,
        vendor,
        proxy,
        port,
        ca_dir / ca.CERT_FILE,
        fakes,
        parsed.audit_path,
        cm,
        vendor_files.ca,
        vport,
    )


# ---- raw clients for the attacks ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_reply(sock: socket.socket, method: bytes = b"GET") -> Reply:
    conn = h11.Connection(h11.CLIENT)
    # Tell h11 what we asked so it frames the answer right (we sent the bytes ourselves).
    conn.send(h11.Request(method=method, target=b"/", headers=[(b"host", b"x")]))
    conn.send(h11.EndOfMessage())
    response = None
    chunks = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            response = event
            if method == b"CONNECT" and 200 <= event.status_code < 300:
                break
        elif isinstance(event, h11.Data):
            chunks.append(event.data)
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    assert response is not None
    headers = {k.decode(): v.decode() for k, v in response.headers}
    return Reply(response.status_code, headers, b"".join(chunks))


def connect(port: int, target: str, extra: bytes = b"") -> tuple[socket.socket, Reply]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (target.encode(), target.encode(), extra)
    )
    return sock, read_reply(sock, b"CONNECT")


def tunnel(stack: Stack, host: str, sni: str | None = None) -> ssl.SSLSocket:
    sock, reply = connect(stack.port, f"{host}:443")
    assert reply.status == 200, reply
    ctx = stack.client_context()
    if sni is None:
        sni = host
    if sni == "":
        ctx.check_hostname = False
        return ctx.wrap_socket(sock)
    return ctx.wrap_socket(sock, server_hostname=sni)


def raw(stack: Stack, host: str, request: bytes, method: bytes = b"POST") -> Reply:
    with tunnel(stack, host) as sock:
        sock.sendall(request)
        return read_reply(sock, method)


def post(
    path: str,
    key_header: bytes,
    body: bytes = b'{"model":"m","max_tokens":5,"messages":[]}',
    host: bytes = b"api.anthropic.com",
    extra: bytes = b"",
) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: %s\r\n%s\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n%s\r\n%s"
        % (path.encode(), host, key_header, len(body), extra, body)
    )
