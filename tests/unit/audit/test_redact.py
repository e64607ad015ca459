"""Redaction by argument name and by token shape; fuzzed so it never fails on odd input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.audit.redact import REDACTED, redact, redact_text

SECRETS = [
    "sk-ant-api03-AbCdEfGhIjKlMnOpQr",
    "sk-proj-abcdefghijklmnopqrstuvwx",
    "ghp_0123456789abcdefghijABCDEFGHIJ",
    "github_pat_11ABCDEFG0123456789_abcdefghij",
    "AKIAIOSFODNN7EXAMPLE",
    "xoxb-1234567890-abcdefghij",
    "Bearer abcdefghijklmnop.qrstu",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
]


@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: s[:12])
def test_known_token_shapes_are_redacted_in_text(secret: str) -> None:
    out = redact_text(f"before {secret} after")
    assert secret not in out
    assert REDACTED in out
    assert out.startswith("before")


def test_secret_named_fields_are_redacted_whatever_their_value() -> None:
    out = redact(
        {"api_key": "x", "Authorization": "y", "nested": [{"client_secret": 1}], "path": "/ws"}
    )
    assert out == {
        "api_key": REDACTED,
        "Authorization": REDACTED,
        "nested": [{"client_secret": REDACTED}],
        "path": "/ws",
    }


@given(st.text())
def test_redaction_never_fails_and_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once
