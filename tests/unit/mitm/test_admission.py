"""The MITM admits only what it understands (issue #16), over real sockets to the fake vendor.

Each finding of the issue is a test here that failed on the proxy that removed what it knew
and forwarded the rest; beside each, a control that must reach the vendor with the real key.
"""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ironcurtain.session.summary import json_lines, llm_counts

from .harness import REAL, Reply, Stack, post, raw, read_reply, start

ANTHROPIC = "api.anthropic.com"
OPENAI = "api.openai.com"
GOOGLE = "generativelanguage.googleapis.com"
PNG = "iVBORw0KGgo="
CLAUDE_CODE = json.loads((Path(__file__).parent / "data" / "claude_code_request.json").read_text())


def _key(stack: Stack, provider: str) -> bytes:
    fake = stack.fakes[provider].encode()
    return {
        "anthropic": b"x-api-key: " + fake,
        "openai": b"authorization: Bearer " + fake,
        "google": b"x-goog-api-key: " + fake,
    }[provider]


_HOSTS = {"anthropic": ANTHROPIC, "openai": OPENAI, "google": GOOGLE}
_PATHS = {
    "anthropic": "/v1/messages",
    "openai": "/v1/chat/completions",
    "responses": "/v1/responses",
    "google": "/v1beta/models/gemini-2.5-pro:generateContent",
}


def _send(
    stack: Stack,
    provider: str,
    doc: Any,
    path: str | None = None,
    extra: bytes = b"",
    body: bytes | None = None,
) -> Reply:
    owner = "openai" if provider == "responses" else provider
    host = _HOSTS[owner]
    data = body if body is not None else json.dumps(doc).encode()
    request = post(
        path or _PATHS[provider], _key(stack, owner), data, host=host.encode(), extra=extra
    )
    return raw(stack, host, request)


def _reached(stack: Stack, before: int, provider: str) -> Any:
    """The vendor got exactly one more request, with the real key; its parsed body."""
    assert len(stack.vendor.seen) == before + 1
    seen = stack.vendor.seen[-1]
    real = REAL[provider]
    assert real in {v.removeprefix("Bearer ") for vs in seen.headers.values() for v in vs}
    return json.loads(seen.body) if seen.body else None


def _refused(stack: Stack, before: int, reply: Reply, status: int, rule: str) -> str:
    assert reply.status == status, reply
    assert reply.headers["x-ironcurtain-refused"] == rule
    assert len(stack.vendor.seen) == before
    line = stack.audit()[-1]
    assert (line["decision"], line["rule"]) == ("refuse", rule)
    return reply.body.decode()


def _user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": list(blocks)}]}


# ---- controls --------------------------------------------------------------------------------


def test_control_the_real_claude_code_request_reaches_the_vendor_with_its_headers(
    stack: Stack,
) -> None:
    before = len(stack.vendor.seen)
    sent = CLAUDE_CODE["headers"]
    extra = b"".join(
        f"{name}: {value}\r\n".encode()
        for name, values in sent.items()
        if name != "content-type"
        for value in values
    )
    reply = _send(stack, "anthropic", CLAUDE_CODE["body"], CLAUDE_CODE["target"], extra)
    assert reply.status == 200, reply
    assert _reached(stack, before, "anthropic") == CLAUDE_CODE["body"]
    seen = stack.vendor.seen[-1]
    assert seen.target == "/v1/messages?beta=true"
    for name in ("anthropic-beta", "anthropic-version", "x-app", "x-stainless-lang", "user-agent"):
        assert seen.headers[name] == sent[name], name


@pytest.mark.parametrize(
    ("provider", "doc"),
    [
        (
            "anthropic",
            _user(
                {"type": "text", "text": "what is this?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
            ),
        ),
        (
            "openai",
            {
                "model": "gpt-4o",
                "max_completion_tokens": 1024,  # given, so no default bound is written in
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": f"data:image/png;base64,{PNG}"},
                            }
                        ],
                    }
                ],
            },
        ),
        (
            "google",
            {
                "contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}],
                "generationConfig": {"maxOutputTokens": 1024},
            },
        ),
    ],
)
def test_control_an_inline_image_reaches_the_vendor_with_the_real_key(
    stack: Stack, provider: str, doc: dict[str, Any]
) -> None:
    before = len(stack.vendor.seen)
    reply = _send(stack, provider, doc)
    assert reply.status == 200, reply
    assert _reached(stack, before, provider) == doc


def test_control_a_normal_stream_reaches_the_vendor_and_streams_back(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    doc = {**_user({"type": "text", "text": "hi"}), "stream": True}
    reply = _send(stack, "anthropic", doc, "/v1/messages?beta=true")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert b"message_stop" in reply.body
    assert _reached(stack, before, "anthropic") == doc


# ---- finding 1: the vendor as a fetcher --------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "doc", "field", "said"),
    [
        (
            "anthropic",
            _user({"type": "image", "source": {"type": "url", "url": "https://evil.test/a.png"}}),
            "messages[0].content[0].source.type",
            '"type":"invalid_request_error"',
        ),
        (
            "anthropic",
            _user({"type": "document", "source": {"type": "url", "url": "https://evil.test/d"}}),
            "messages[0].content[0].source.type",
            '"type":"invalid_request_error"',
        ),
        (
            "openai",
            {
                "model": "gpt-4o",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://evil.test/a.png"}}
                        ],
                    }
                ],
            },
            "messages[0].content[0].image_url.url",
            '"code":"ironcurtain"',
        ),
        (
            "responses",
            {
                "model": "gpt-4.1",
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_file", "file_url": "https://evil.test/d.pdf"}],
                    }
                ],
            },
            "input[0].content[0].file_url",
            '"code":"ironcurtain"',
        ),
        (
            "responses",
            {
                "model": "gpt-4.1",
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "https://evil.test/a.png"}
                        ],
                    }
                ],
            },
            "input[0].content[0].image_url",
            '"code":"ironcurtain"',
        ),
        (
            "google",
            {"contents": [{"parts": [{"fileData": {"fileUri": "https://evil.test/x"}}]}]},
            "contents[0].parts[0].fileData",
            '"status":"INVALID_ARGUMENT"',
        ),
    ],
)
def test_content_that_makes_the_vendor_fetch_a_url_is_refused_naming_the_field(
    stack: Stack, provider: str, doc: dict[str, Any], field: str, said: str
) -> None:
    before = len(stack.vendor.seen)
    text = _refused(stack, before, _send(stack, provider, doc), 400, "content")
    assert said in text  # the provider's own error shape
    assert field in text
    assert "evil.test" not in text
    assert "evil.test" not in stack.audit_path.read_text()


def test_openai_web_search_options_never_reach_the_vendor(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    doc = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "search the web for our secrets"}],
        "web_search_options": {"search_context_size": "high"},
    }
    assert _send(stack, "openai", doc).status == 200
    seen = _reached(stack, before, "openai")
    assert "web_search_options" not in seen
    assert seen["messages"] == doc["messages"]


# ---- finding 3: credentials by other names, billing steering -----------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"x_api_key: sk-ant-api03-attacker",
        b"anthropic-api-key: sk-ant-api03-attacker",
        b"x-auth-token: attacker",
        b"X-Api_Key: attacker",
        b"x-goog-api-key: attacker",
        b"api-key: attacker",
        b"x-anthropic-session-token: attacker",
        b"proxy-authorization: Basic YTpi",
        b"x-secret: attacker",
    ],
)
def test_credential_headers_by_other_names_are_refused(stack: Stack, header: bytes) -> None:
    before = len(stack.vendor.seen)
    reply = _send(stack, "anthropic", _user(), extra=header + b"\r\n")
    text = _refused(stack, before, reply, 403, "key")
    assert "attacker" not in text


@pytest.mark.parametrize(
    ("provider", "header"),
    [
        ("openai", b"OpenAI-Organization: org-attacker"),
        ("openai", b"OpenAI-Project: proj_attacker"),
        ("google", b"X-Goog-User-Project: attacker-project"),
        ("anthropic", b"x-anthropic-billing-header: cc_version=1"),
        ("anthropic", b"anthropic-workspace-id: wrkspc_attacker"),
        ("anthropic", b"x-forwarded-for: 10.0.0.1"),
    ],
)
def test_billing_steering_and_unknown_headers_are_not_forwarded(
    stack: Stack, provider: str, header: bytes
) -> None:
    before = len(stack.vendor.seen)
    doc = {
        "anthropic": _user(),
        "openai": {"model": "gpt-4o", "messages": []},
        "google": {"contents": []},
    }[provider]
    assert _send(stack, provider, doc, extra=header + b"\r\n").status == 200
    _reached(stack, before, provider)
    name = header.partition(b":")[0].decode().lower()
    assert name not in stack.vendor.seen[-1].headers


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ("anthropic", "/v1/messages?oauth_token=attacker"),
        ("anthropic", "/v1/messages?%24key=attacker"),
        ("anthropic", "/v1/messages?$key=attacker"),
        ("anthropic", "/v1/messages?beta=true&key=attacker"),
        ("anthropic", "/v1/messages?beta=true&beta=true"),
        ("anthropic", "/v1/messages?beta=true;key=attacker"),
        ("anthropic", "/v1/messages?beta=%74rue"),
        ("anthropic", "/v1/messages;key=attacker"),
        ("google", "/v1beta/models/gemini-2.5-pro:generateContent?key=attacker"),
        ("google", "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse&key=attacker"),
    ],
)
def test_query_parameters_outside_the_endpoints_allowlist_are_refused(
    stack: Stack, provider: str, path: str
) -> None:
    before = len(stack.vendor.seen)
    doc = {"contents": []} if provider == "google" else _user()
    reply = _send(stack, provider, doc, path)
    assert reply.status in (400, 403)
    assert len(stack.vendor.seen) == before
    assert "attacker" not in reply.body.decode()
    assert "attacker" not in stack.audit_path.read_text()


def test_control_the_admitted_query_of_a_gemini_stream_is_forwarded(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    reply = _send(stack, "google", {"contents": []}, path)
    assert "x-ironcurtain-refused" not in reply.headers  # the fake's own answer (it has no stream)
    _reached(stack, before, "google")
    assert stack.vendor.seen[-1].target == path


# ---- finding 4: matched decoded, forwarded raw -------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "path", "forwarded"),
    [
        ("anthropic", "/v1/message%73", "/v1/messages"),
        ("anthropic", "/%761/messages?beta=true", "/v1/messages?beta=true"),
        (
            "google",
            "/v1beta/models/gemini%2D2.5-pro%3AgenerateContent",
            "/v1beta/models/gemini-2.5-pro:generateContent",
        ),
    ],
)
def test_the_canonical_path_that_matched_is_what_goes_upstream(
    stack: Stack, provider: str, path: str, forwarded: str
) -> None:
    before = len(stack.vendor.seen)
    doc = {"contents": []} if provider == "google" else _user()
    assert _send(stack, provider, doc, path).status == 200
    _reached(stack, before, provider)
    assert stack.vendor.seen[-1].target == forwarded


@pytest.mark.parametrize(
    "segment",
    ["gemini%3Falt=sse%26%24key=x", "gemini%3B:generateContent", "gemini%23:generateContent"],
)
def test_encoded_separators_inside_a_star_segment_are_refused(stack: Stack, segment: str) -> None:
    before = len(stack.vendor.seen)
    path = f"/v1beta/models/{segment}"
    if not segment.endswith(":generateContent"):
        path += ":generateContent"
    reply = _send(stack, "google", {"contents": []}, path)
    _refused(stack, before, reply, 400, "path")


def test_an_encoded_percent_is_refused(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    path = "/v1beta/models/gemini%2525:generateContent"
    _refused(stack, before, _send(stack, "google", {"contents": []}, path), 400, "path")


# ---- finding 5: ambiguous JSON, HEAD -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            b'{"model":"m","max_tokens":5,"messages":[],'
            b'"tools":[{"type":"web_search_20250305","name":"web_search"}],"tools":[]}',
            "duplicate key",
        ),
        (
            b'{"model":"m","max_tokens":5,"messages":[],"model":"claude-opus-4"}',
            "duplicate key",
        ),
        (
            b'{"model":"\\ud800","max_tokens":5,"messages":[],'
            b'"tools":[{"type":"web_search_20250305","name":"web_search"}]}',
            "lone surrogate",
        ),
    ],
)
def test_ambiguous_json_is_refused_with_an_answer_and_an_audit_line(
    stack: Stack, body: bytes, said: str
) -> None:
    before = len(stack.vendor.seen)
    reply = _send(stack, "anthropic", None, body=body)
    assert said in _refused(stack, before, reply, 400, "json")


def test_a_refused_head_gets_an_answer(stack: Stack) -> None:
    request = (
        f"HEAD /v1/messages HTTP/1.1\r\nHost: {ANTHROPIC}\r\n"
        f"x-api-key: {stack.fakes['anthropic']}\r\n\r\n"
    ).encode()
    reply = raw(stack, ANTHROPIC, request, b"HEAD")
    assert reply.status == 403
    assert reply.headers["x-ironcurtain-refused"] == "endpoint"
    assert reply.body == b""  # a HEAD answer has no body


# ---- finding 6: refusals echo nothing, and the audit stays bounded ------------------------------


def test_a_malformed_head_is_answered_without_echoing_its_bytes(stack: Stack) -> None:
    request = (
        f"POST /v1/messages HTTP/1.1\r\nHost: {ANTHROPIC}\r\n"
        "bad header line with SECRET-BYTES\r\n\r\n"
    ).encode()
    reply = raw(stack, ANTHROPIC, request)
    assert reply.status == 400
    assert "SECRET-BYTES" not in reply.body.decode()
    assert "SECRET-BYTES" not in stack.audit_path.read_text()


def test_a_malformed_connect_is_answered_without_echoing_its_bytes(stack: Stack) -> None:
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=5)
    sock.sendall(b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nSECRET-BYTES no colon\r\n\r\n")
    reply = read_reply(sock, b"CONNECT")
    sock.close()
    assert reply.status == 400
    assert "SECRET-BYTES" not in reply.body.decode()


def test_refused_connects_with_huge_hosts_write_bounded_lines_and_are_rate_limited(
    tmp_path: Path,
) -> None:
    # A slow refill, so that the figures do not depend on how fast this machine is today.
    stack = start(tmp_path, limits={"refusals_per_s": 0.1, "refusals_burst": 100})
    try:
        size_before = stack.audit_path.stat().st_size
        host = "a" * 16_000 + ".test"  # twice in the head (target, Host): under its 32 KiB
        answered = 0
        for _ in range(300):
            with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as sock:
                sock.sendall(
                    b"CONNECT %s:443 HTTP/1.1\r\nHost: %s\r\n\r\n" % ((host.encode(),) * 2)
                )
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            answered += answer.startswith(b"HTTP/1.1 403 ")  # else closed unanswered
        stack.until(lambda: stack.proxy.connections == 0)
        lines = stack.audit()
        written = stack.audit_path.stat().st_size - size_before
    finally:
        stack.close()
    refusals = [line for line in lines if line["decision"] == "refuse"]
    limits = [line for line in lines if line["decision"] == "limit"]
    assert refusals, "refusals are audited"
    assert all(len(json.dumps(line)) < 1024 for line in lines)  # hosts written once, cut
    assert len(refusals) <= 100 + 1  # past the burst: closed and counted, not written
    assert len(limits) == 1
    assert limits[0]["rule"] == "rate"
    assert written / 300 <= 2048  # bytes of audit per refused request (target <= 2 KB)
    assert answered == len(refusals)
    summary = json.loads(stack.audit_path.read_text().splitlines()[-1])  # at shutdown
    assert summary["event"] == "refusals"
    assert "closed unanswered" in summary["reason"]
    # The session's count holds every refusal, the unwritten ones too (the summary line's count).
    assert summary["count"] == 300 - len(refusals)
    assert llm_counts(json_lines(stack.audit_path.read_text())).refused == 300


def test_a_flood_of_hang_ups_does_not_push_real_refusals_out_of_the_log(tmp_path: Path) -> None:
    stack = start(tmp_path, limits={"refusals_per_s": 0.1, "refusals_burst": 20})
    try:
        for _ in range(60):  # CONNECT, our 200, then gone before TLS: `cancelled`
            with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as sock:
                sock.sendall(b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        stack.until(lambda: stack.proxy.connections == 0)
        with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as sock:
            sock.sendall(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 403 ")  # answered, so written
        stack.until(lambda: stack.proxy.connections == 0)
    finally:
        stack.close()
    lines = json_lines(stack.audit_path.read_text())
    assert [x["host"] for x in lines if x["decision"] == "refuse"] == ["example.com:443"]
    assert sum(x["decision"] == "cancelled" for x in lines) <= 20 + 1
    assert llm_counts(lines).refused == 1


def test_a_refused_query_and_path_are_not_echoed(stack: Stack) -> None:
    before = len(stack.vendor.seen)
    reply = _send(stack, "anthropic", _user(), "/v1/nothing-here?token=SECRET-QUERY")
    text = _refused(stack, before, reply, 403, "endpoint")
    assert "SECRET-QUERY" not in text
    assert "SECRET-QUERY" not in stack.audit_path.read_text()


def test_under_concurrency_every_ambiguous_body_is_refused_and_every_control_passes(
    stack: Stack,
) -> None:
    before = len(stack.vendor.seen)
    hostile = (
        b'{"model":"m","max_tokens":5,"messages":[],"tools":[{"type":"web_search"}],"tools":[]}'
    )
    legit = json.dumps(_user({"type": "text", "text": "hi"})).encode()
    with ThreadPoolExecutor(max_workers=16) as pool:
        refused = list(pool.map(lambda _: _send(stack, "anthropic", None, body=hostile), range(16)))
        passed = list(pool.map(lambda _: _send(stack, "anthropic", None, body=legit), range(16)))
    assert [r.status for r in refused] == [400] * 16
    assert [r.status for r in passed] == [200] * 16
    bodies = [seen.body for seen in list(stack.vendor.seen)[before:]]
    assert bodies == [legit.replace(b" ", b"")] * 16  # only the controls, canonical
