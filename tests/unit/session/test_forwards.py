"""FORWARDS for the sidecar: the same acceptance rules as images/sidecar/sidecar.sh."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.session.forwards import Forward, ForwardError, parse, render


def test_a_declared_list_round_trips() -> None:
    raw = "8080:mcp-proxy:8080, 3128:mitm-proxy:3128,2375:socket-proxy:2375,5432:postgres:5432"
    forwards = parse(raw)
    assert forwards[0] == Forward(8080, "mcp-proxy", 8080)
    assert render(forwards) == raw.replace(" ", "")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "no FORWARDS declared"),
        (" , ", "no FORWARDS declared"),
        ("8080", "malformed forward"),
        ("8080:host", "malformed forward"),
        ("8080:host:80:90", "malformed forward"),
        ("8080:-host:80", "malformed forward"),
        ("8080:host name:80", "malformed forward"),
        ("8080:ho$t:80", "malformed forward"),
        ("8080:host:80;id", "malformed forward"),
        ("80:host:80", "use 1024-65535"),
        ("70000:host:80", "use 1024-65535"),
        ("8080:host:0", "not a TCP port"),
        ("8080:10.0.0.1:80", "by name, not address"),
        ("8080:a1:80,8080:b1:80", "declared twice"),
    ],
)
def test_a_malformed_list_is_refused_with_the_sidecars_reason(raw: str, reason: str) -> None:
    with pytest.raises(ForwardError, match=reason):
        parse(raw)


def test_rendering_refuses_duplicates_and_nothing() -> None:
    with pytest.raises(ForwardError, match="declared twice"):
        render([Forward(8080, "a1", 1), Forward(8080, "b1", 2)])
    with pytest.raises(ForwardError, match="no FORWARDS"):
        render([])


@given(st.text(alphabet="0123456789:,.-_ abz$", max_size=40))
def test_any_text_parses_to_valid_forwards_or_is_refused(raw: str) -> None:
    try:
        forwards = parse(raw)
    except ForwardError:
        return
    assert parse(render(forwards)) == forwards
    assert all(1024 <= f.listen <= 65535 and 1 <= f.port <= 65535 for f in forwards)
