"""The start-up isolation check's pure parts: reading the probe's answer, naming problems."""

from __future__ import annotations

import json
import socket

import pytest

from ironcurtain.session.checks import Canary, IsolationError, check_hardening, parse_probe

OK = {"mcp": "ok", "mitm": "ok", "docker": "ok"}


def test_all_doors_answering_and_no_canary_reached_is_no_problem() -> None:
    result = parse_probe("noise\n" + json.dumps({"doors": OK, "reached": []}), [])
    assert result.problems() == []


@pytest.mark.parametrize(
    ("doors", "reached", "hits", "problem"),
    [
        ({**OK, "mitm": "unreachable: timed out"}, [], [], "door mitm does not answer"),
        (OK, ["172.17.0.1:4000"], [], "reached the host canary at 172.17.0.1:4000"),
        (OK, [], ["172.18.0.2:5555"], "canary got a connection from 172.18.0.2:5555"),
    ],
)
def test_each_problem_is_named(
    doors: dict[str, str], reached: list[str], hits: list[str], problem: str
) -> None:
    result = parse_probe(json.dumps({"doors": doors, "reached": reached}), hits)
    assert any(problem in p for p in result.problems())


@pytest.mark.parametrize("output", ["", "Traceback ...", '{"something": "else"}'])
def test_a_probe_without_a_result_fails_closed(output: str) -> None:
    with pytest.raises(IsolationError, match="no result"):
        parse_probe(output, [])


def test_an_unhardened_container_is_refused() -> None:
    with pytest.raises(IsolationError, match="runs as root"):
        check_hardening({"Config": {"User": ""}, "HostConfig": {}})


def test_the_canary_records_a_connection() -> None:
    with Canary() as canary:
        socket.create_connection(("127.0.0.1", canary.port), 2).close()
        assert canary.hit.wait(5)
    assert canary.hits[0].startswith("127.0.0.1:")
