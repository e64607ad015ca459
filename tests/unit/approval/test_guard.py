"""Login, CSRF and headers need no Redis: checked with Flask's test client (Docker-free)."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient


def csrf(client: FlaskClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert found
    return found.group(1)


def test_the_login_page_carries_the_strict_headers(client: FlaskClient) -> None:
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 302),  # the control: same-origin, right token
        ({"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}, 302),
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),
    ],
)
def test_login_posts_from_other_sites_are_refused(
    client: FlaskClient, tokens: dict[str, str], headers: dict[str, str], status: int
) -> None:
    data = {"name": "alice", "token": tokens["alice"], "csrf_token": csrf(client)}
    response = client.post("/login", data=data, headers=headers)
    assert response.status_code == status


def test_a_login_without_the_csrf_token_is_refused(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    client.get("/login")
    data = {"name": "alice", "token": tokens["alice"]}
    assert client.post("/login", data=data).status_code == 403
