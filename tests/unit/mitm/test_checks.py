"""The request path's checks as pure functions over a Flow: a refusal or nothing, no I/O."""

from __future__ import annotations

import h11
import pytest

from ironcurtain.mitm import checks, providers
from ironcurtain.mitm.errors import Refusal
from ironcurtain.mitm.flow import Flow, outgoing

ANTHROPIC = providers.builtin()["anthropic"]
FAKE = "sk-ant-api03-FAKE"
REAL = "sk-ant-api03-REAL"
ADMISSION = checks.Admission.of(ANTHROPIC)


def _flow(target: bytes = b"/v1/messages", *extra: tuple[bytes, bytes]) -> Flow:
    headers = [(b"host", b"api.anthropic.com"), (b"x-api-key", FAKE.encode()), *extra]
    request = h11.Request(method=b"POST", target=target, headers=headers)
    return Flow(request, ANTHROPIC, "api.anthropic.com", "1", 0.0, "POST")


def _run(flow: Flow, body: bytes = b'{"model":"m"}') -> Refusal | None:
    return (
        checks.head(flow, 1000)
        or checks.endpoint(flow)
        or checks.header_allowlist(flow, ADMISSION)
        or checks.key(flow, {"anthropic": FAKE}, {"anthropic": REAL})
        or checks.body(flow, body, ADMISSION)
    )


def test_a_flow_that_passes_every_check_becomes_the_canonical_outgoing_request() -> None:
    flow = _flow(b"/v1/message%73?beta=true", (b"anthropic-version", b"2023-06-01"))
    assert _run(flow, b'{ "model" : "m" }') is None
    out = outgoing(flow, "x-api-key", bearer=False)
    assert out.target == b"/v1/messages?beta=true"
    assert out.body == b'{"model":"m"}'
    assert (b"x-api-key", REAL.encode()) in out.headers
    assert (b"x-api-key", FAKE.encode()) not in out.headers
    assert (b"anthropic-version", b"2023-06-01") in out.headers


@pytest.mark.parametrize(
    ("flow", "body", "rule"),
    [
        (_flow(b"/v1/files"), b"{}", "endpoint"),
        (_flow(b"/v1/messages?key=x"), b"{}", "query"),
        (_flow(b"/v1/messages", (b"x_api_key", b"x")), b"{}", "key"),
        (_flow(b"/v1/messages", (b"content-length", b"5000")), b"{}", "size"),
        (_flow(b"/v1/messages"), b'{"a":1,"a":2}', "json"),
        (_flow(b"/v1/messages"), b'{"messages":[{"content":[{"type":"image"}]}]}', "content"),
    ],
)
def test_the_first_failing_check_names_its_rule(flow: Flow, body: bytes, rule: str) -> None:
    refusal = _run(flow, body)
    assert refusal is not None
    assert refusal.rule == rule


def test_h11_still_takes_the_private_parsed_flag_the_forwarding_relies_on() -> None:
    # server.py builds the upstream request and the agent's response from heads h11 already
    # validated, with `_parsed=True` (a private flag; pyproject pins h11 to 0.16.x). A new h11
    # that drops or renames the flag must fail here, not in production.
    odd = [(b"host", b"a\r\nb")]  # a CRLF h11 refuses when it validates
    request = h11.Request(method=b"GET", target=b"/", headers=odd, _parsed=True)
    assert list(request.headers) == odd
    with pytest.raises(h11.LocalProtocolError):
        h11.Request(method=b"GET", target=b"/", headers=odd)
