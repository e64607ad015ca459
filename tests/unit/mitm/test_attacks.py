"""Attacks on the proxy, each its own test, over real sockets and real TLS.

Every refusal must reach the client with a clear reason, must be audited, and must leave the
vendor untouched (the fake vendor records everything it receives).
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from .harness import REAL, Stack, connect, post, raw, read_reply, tunnel


def _key(stack: Stack, provider: str = "anthropic") -> bytes:
    return b"x-api-key: " + stack.fakes[provider].encode()


# ---- CONNECT ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("example.com:443", "not on the allowlist"),
        ("api.anthropic.com.evil.test:443", "not on the allowlist"),
        ("127.0.0.1:443", "IP literal"),
        ("[::1]:443", "IP literal"),
        ("2130706433:443", "IP literal"),
        ("0x7f.0.0.1:443", "IP literal"),
        ("api.anthropic.com:80", "port 80"),
        ("api.anthropic.com:8443", "port 8443"),
        ("api.anthropic.com", "host:443"),
    ],
)
def test_connect_to_anything_but_an_allowlisted_host_on_443_is_refused(
    stack: Stack, target: str, reason: str
) -> None:
    sock, reply = connect(stack.port, target)
    sock.close()
    assert reply.status in (400, 403)
    assert reason in reply.body.decode()
    assert reply.body.decode().count("\n") == 1  # one line
    assert any(e.get("rule") and e["decision"] == "refuse" for e in stack.audit())


def test_absolute_form_plain_http_proxying_is_refused(stack: Stack) -> None:
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=5)
    sock.sendall(
        b"GET http://api.anthropic.com/v1/models HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n"
    )
    reply = read_reply(sock)
    sock.close()
    assert reply.status == 403
    assert "only CONNECT" in reply.body.decode()


def test_h2c_upgrade_on_the_proxy_connection_is_refused(stack: Stack) -> None:
    sock, reply = connect(
        stack.port, "api.anthropic.com:443", b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
    )
    sock.close()
    assert reply.status == 403
    assert "upgrade" in reply.body.decode()


# ---- TLS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sni", ["api.openai.com", "example.com", ""])
def test_tls_with_sni_other_than_the_connect_host_is_refused(stack: Stack, sni: str) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tunnel(stack, "api.anthropic.com", sni=sni).close()
    lines = stack.audit_until(lambda line: line["rule"] == "tls")
    assert lines[-1]["decision"] == "refuse"


def test_a_client_that_hangs_up_after_the_200_is_cancelled_not_refused(stack: Stack) -> None:
    # The start-up probe does exactly this; a refusal here would count against every session.
    sock, reply = connect(stack.port, "api.anthropic.com:443")
    assert reply.status == 200
    sock.close()
    # The stack is shared: wait for this tunnel's own line, not an earlier test's late one.
    lines = stack.audit_until(lambda line: line["decision"] == "cancelled")
    assert lines[-1]["rule"] == "tls"
    assert "closed the tunnel" in lines[-1]["reason"]


def test_our_leaf_is_not_trusted_without_our_ca(stack: Stack) -> None:
    sock, _ = connect(stack.port, "api.anthropic.com:443")
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(sock, server_hostname="api.anthropic.com")


# ---- the inner request --------------------------------------------------------------------------


def test_host_header_other_than_the_tunnel_host_is_refused(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    reply = raw(
        stack, "api.anthropic.com", post("/v1/messages", _key(stack), host=b"api.openai.com")
    )
    assert reply.status == 403
    assert reply.json()["error"]["type"] == "permission_error"
    assert "Host header" in reply.json()["error"]["message"]
    assert len(stack.vendor.seen) == before


def test_two_host_headers_are_refused(stack: Stack) -> None:
    reply = raw(
        stack,
        "api.anthropic.com",
        post("/v1/messages", _key(stack), extra=b"Host: api.anthropic.com\r\n"),
    )
    assert reply.status in (400, 403)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/messages/../models",
        "/v1/./messages",
        "//v1/messages",
        "/v1//messages",
        "/v1/messages/",
        "/v1%2Fmessages",
        "/v1%2fmessages",
        "/v1%5Cmessages",
        "/v1\\messages",
        "/v1/messages%00",
        "/v1/%2e%2e/v1/messages",
        "/v1/%C0%AE%C0%AE/messages",
        "/v1/%FF/messages",
        "/v1/%E2%82/messages",
        "/v1/messages;jsessionid=1",
        "/v1/mess%ZZages",
    ],
)
def test_ambiguous_paths_are_refused_before_the_vendor_sees_them(stack: Stack, path: str) -> None:
    before = len(stack.vendor.seen)
    reply = raw(stack, "api.anthropic.com", post(path, _key(stack)))
    assert reply.status in (400, 403), path
    assert reply.json()["type"] == "error"
    assert len(stack.vendor.seen) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages"),
        ("POST", "/v1/files"),
        ("DELETE", "/v1/messages"),
        ("POST", "/v1/messages/batches"),
        ("POST", "/v1/messages/count_tokens/x"),
    ],
)
def test_endpoints_outside_the_allowlist_are_refused(stack: Stack, method: str, path: str) -> None:
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: api.anthropic.com\r\n"
        f"x-api-key: {stack.fakes['anthropic']}\r\ncontent-length: 0\r\n\r\n"
    ).encode()
    reply = raw(stack, "api.anthropic.com", request, method.encode())
    assert reply.status == 403
    assert "not an allowed endpoint" in reply.json()["error"]["message"]


def test_the_query_string_does_not_change_which_endpoint_matches(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    reply = raw(stack, "api.anthropic.com", post("/v1/messages?x=/../files", _key(stack)))
    assert reply.status == 403  # not a parameter the endpoint admits
    assert "/../files" not in reply.body.decode()  # the query is never echoed
    assert len(stack.vendor.seen) == before
    reply = raw(stack, "api.anthropic.com", post("/v1/messages?beta=true", _key(stack)))
    assert reply.status == 200  # the one Claude Code sends
    assert stack.vendor.seen[-1].target == "/v1/messages?beta=true"


def test_websocket_upgrade_inside_the_tunnel_is_refused(stack: Stack) -> None:
    request = (
        b"GET /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    reply = raw(stack, "api.anthropic.com", request, b"GET")
    assert reply.status == 403
    assert "upgrade" in reply.json()["error"]["message"]


# ---- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (b"", 401),  # missing
        (b"x-api-key: sk-ant-api03-wrong", 401),
        (b"x-api-key: sk-ant-api03-" + b"A" * 86 + b"AA", 401),  # real-looking
        (b"x-api-key: " + REAL["anthropic"].encode(), 401),  # even the real key is not forwarded
        (b"authorization: Basic Zm9vOmJhcg==", 401),
    ],
)
def test_keys_that_are_not_the_sessions_fake_are_refused_and_never_forwarded(
    stack: Stack, header: bytes, status: int
) -> None:
    before = len(stack.vendor.seen)
    reply = raw(stack, "api.anthropic.com", post("/v1/messages", header))
    assert reply.status == status
    assert reply.json()["error"]["type"] == "authentication_error"
    assert len(stack.vendor.seen) == before


def test_a_fake_key_of_another_provider_is_refused_and_flagged(stack: Stack) -> None:
    foreign = b"authorization: Bearer " + stack.fakes["openai"].encode()
    reply = raw(stack, "api.anthropic.com", post("/v1/messages", foreign))
    assert reply.status == 403
    assert "issued for openai" in reply.json()["error"]["message"]
    assert stack.audit()[-1]["flag"] == "foreign_fake_key"


def test_an_extra_credential_header_next_to_the_fake_key_is_refused(stack: Stack) -> None:
    extra = b"x-goog-api-key: attacker-key\r\n"
    reply = raw(stack, "api.anthropic.com", post("/v1/messages", _key(stack), extra=extra))
    assert reply.status == 403
    assert "x-goog-api-key" in reply.json()["error"]["message"]


def test_an_attacker_key_in_the_query_string_is_refused(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    path = "/v1beta/models/gemini-2.5-pro:generateContent?key=AIzaSyATTACKER"
    request = post(
        path,
        b"x-goog-api-key: " + stack.fakes["google"].encode(),
        b"{}",
        host=b"generativelanguage.googleapis.com",
    )
    reply = raw(stack, "generativelanguage.googleapis.com", request)
    assert reply.status == 403
    assert reply.json()["error"]["status"] == "PERMISSION_DENIED"
    assert len(stack.vendor.seen) == before


def test_refusals_use_the_providers_error_shape(stack: Stack) -> None:
    openai_reply = raw(
        stack,
        "api.openai.com",
        post("/v1/chat/completions", b"authorization: Bearer nope", host=b"api.openai.com"),
    )
    assert openai_reply.status == 401
    assert set(openai_reply.json()["error"]) == {"message", "type", "param", "code"}


# ---- framing, sizes, time -----------------------------------------------------------------------


def test_oversize_headers_are_refused(stack: Stack) -> None:
    big = b"x-filler: " + b"a" * 40_000
    reply = raw(stack, "api.anthropic.com", post("/v1/messages", _key(stack), extra=big + b"\r\n"))
    assert reply.status == 431


def test_oversize_connect_headers_are_refused(stack: Stack) -> None:
    sock, reply = connect(
        stack.port, "api.anthropic.com:443", b"x-filler: " + b"a" * 40_000 + b"\r\n"
    )
    sock.close()
    assert reply.status == 431


def test_a_slow_client_is_cut_off_after_the_header_timeout(stack: Stack) -> None:
    # header_timeout_s is 1 s in the harness; the socket's own timeout (5 s) bounds the test.
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=5)
    sock.sendall(b"CONNECT api.anthropic.com:443 HTTP/1.1\r\n")
    started = time.monotonic()
    try:
        for _ in range(10):
            sock.sendall(b"x-slow: 1\r\n")  # a trickle, never the blank line
            if sock.recv(1024) == b"":
                break
    except (ConnectionError, TimeoutError):
        pass
    finally:
        sock.close()
    assert time.monotonic() - started < 5


def test_a_slow_client_inside_the_tunnel_is_cut_off(stack: Stack) -> None:
    with tunnel(stack, "api.anthropic.com") as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\n")
        assert sock.recv(1024) == b""  # closed by the proxy, well inside the 5 s socket timeout


def test_content_length_with_transfer_encoding_is_refused(stack: Stack) -> None:
    request = (
        b"POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\n" + _key(stack) + b"\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /v1/files HTTP/1.1\r\n\r\n"
    )
    reply = raw(stack, "api.anthropic.com", request)
    assert reply.status == 400
    assert "Transfer-Encoding and Content-Length" in reply.json()["error"]["message"]


def test_conflicting_content_lengths_are_refused(stack: Stack) -> None:
    request = post("/v1/messages", _key(stack), extra=b"Content-Length: 7\r\n")
    reply = raw(stack, "api.anthropic.com", request)
    assert reply.status == 400


def test_a_repeated_identical_content_length_is_forwarded_once_and_framed_by_us(
    stack: Stack,
) -> None:
    body = b'{"model":"m","max_tokens":5,"messages":[]}'
    request = post("/v1/messages", _key(stack), body, extra=b"Content-Length: %d\r\n" % len(body))
    reply = raw(stack, "api.anthropic.com", request)
    assert reply.status == 200
    assert stack.vendor.seen[-1].headers["content-length"] == [str(len(body))]
    assert stack.vendor.seen[-1].body == body


def test_a_smuggled_request_in_a_chunked_body_stays_body(stack: Stack) -> None:
    smuggled = b"GET /v1/files HTTP/1.1\r\nHost: api.anthropic.com\r\n\r\n"
    request = (
        b"POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\n" + _key(stack) + b"\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    )
    before = len(stack.vendor.seen)
    reply = raw(stack, "api.anthropic.com", request)
    assert reply.status == 400  # the body is not JSON, so it cannot be checked: refused
    assert len(stack.vendor.seen) == before


def test_a_body_over_the_limit_is_refused_with_413(stack: Stack) -> None:
    body = b'{"pad":"' + b"a" * 100_001 + b'"}'
    reply = raw(stack, "api.anthropic.com", post("/v1/messages", _key(stack), body))
    assert reply.status == 413
    assert reply.json()["error"]["type"] == "request_too_large"


def test_a_chunked_body_over_the_limit_is_refused_with_413(stack: Stack) -> None:
    chunk = b"a" * 60_000
    request = (
        b"POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\n" + _key(stack) + b"\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 2
        + b"0\r\n\r\n"
    )
    assert raw(stack, "api.anthropic.com", request).status == 413


def test_a_compressed_request_body_is_refused_with_415(stack: Stack) -> None:
    request = post("/v1/messages", _key(stack), extra=b"Content-Encoding: gzip\r\n")
    assert raw(stack, "api.anthropic.com", request).status == 415


def test_a_body_that_must_be_rewritten_but_does_not_parse_is_refused(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    reply = raw(stack, "api.anthropic.com", post("/v1/messages", _key(stack), b'{"tools": [oops'))
    assert reply.status == 400
    assert len(stack.vendor.seen) == before


def test_no_key_appears_in_the_audit_log(stack: Stack) -> None:
    text = stack.audit_path.read_text()
    assert text  # earlier tests in this module wrote to it
    for secret in (*REAL.values(), *stack.fakes.values()):
        assert secret not in text
