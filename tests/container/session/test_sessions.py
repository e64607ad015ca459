"""`ironcurtain sessions` finds running sessions by their compose project; `down` removes one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from ironcurtain.cli import main
from ironcurtain.session.compose import Compose
from ironcurtain.session.naming import SessionName
from ironcurtain.session.sessions import running_sessions

from ..conftest import TEST_LABEL, TEST_LABELS

COMPOSE = """
services:
  idle:
    image: {image}
    command: ["python3", "-c", "import signal; signal.pause()"]
    labels:
      {label}: "{run}"
networks:
  default:
    labels:
      {label}: "{run}"
"""


@pytest.fixture
def session(
    tmp_path: Path, image: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SessionName]:
    monkeypatch.setenv("IRONCURTAIN_STATE_DIR", str(tmp_path / "state"))
    name = SessionName("test-abc123", "0badcafe")
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text(
        COMPOSE.format(image=image("python"), label=TEST_LABEL, run=TEST_LABELS[TEST_LABEL])
    )
    compose = Compose(name.project, files=(compose_file,))
    compose.up()
    try:
        yield name
    finally:
        compose.down()


def test_a_running_session_is_listed(
    session: SessionName, docker_client: docker.DockerClient, capsys: pytest.CaptureFixture[str]
) -> None:
    found = {s.name: s for s in running_sessions(docker_client)}
    assert found[session].containers == ("idle",)
    assert main(["sessions"]) == 0
    assert session.project in capsys.readouterr().out


def test_down_removes_the_sessions_containers_and_network(
    session: SessionName, docker_client: docker.DockerClient
) -> None:
    assert main(["down", session.session_id]) == 0
    assert session not in {s.name for s in running_sessions(docker_client)}
    leftover = docker_client.networks.list(
        filters={"label": f"com.docker.compose.project={session.project}"}
    )
    assert leftover == []


def test_down_of_an_unknown_session_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["down", "ffffffff"]) == 1
    assert "no single running session" in capsys.readouterr().out
