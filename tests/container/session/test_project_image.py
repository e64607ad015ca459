"""A repository's own agent image: its toolchain reaches the agent; a weakened image never runs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from ironcurtain.images.project_build import trust
from ironcurtain.session.run import Refused

from .conftest import AGENT_UID, Env
from .test_identity import _agent

pytestmark = pytest.mark.container

HEADER = "ARG IMAGE_TAG=latest\nFROM ironcurtain/agent-scripted:${IMAGE_TAG}\nUSER root\n"


def _workspace(tmp_path: Path, steps: str) -> Path:
    workspace = tmp_path / "project"
    (workspace / ".ironcurtain").mkdir(parents=True)
    (workspace / ".ironcurtain" / "agent.Dockerfile").write_text(HEADER + steps + "USER agent\n")
    (workspace / ".ironcurtain" / "tool.txt").write_text("the project's toolchain\n")
    for path in (workspace, *workspace.rglob("*")):
        os.chown(path, AGENT_UID, AGENT_UID)
    return workspace


def _trusted(env: Env, workspace: Path) -> Path:
    """What the user does after reviewing .ironcurtain/ (`ironcurtain images trust`)."""
    trust(workspace, env.state / "project-images" / "trusted")
    return workspace


def _remove_project_images(client: docker.DockerClient, before: set[str]) -> None:
    for image in client.images.list(name="ironcurtain/project-*"):
        if image.id not in before:
            client.images.remove(image.id, force=True)


@pytest.fixture
def project_images(docker_client: docker.DockerClient) -> Iterator[None]:
    before = {i.id for i in docker_client.images.list(name="ironcurtain/project-*")}
    yield
    _remove_project_images(docker_client, before)


@pytest.mark.usefixtures("project_images")
def test_the_projects_toolchain_is_in_the_agent_and_the_hardening_holds(
    session_env: Env, tmp_path: Path
) -> None:
    steps = "COPY tool.txt /opt/tool/README\nRUN chmod 644 /opt/tool/README\n"
    workspace = _trusted(session_env, _workspace(tmp_path, steps))
    session = session_env.session(workspace, "(project image)")
    try:
        session.prepare()
        assert session.plan is not None
        assert session.plan.agent_image.startswith("ironcurtain/project-")
        session.up()
        session.check_isolation()  # the same start-up checks as with our own image
        agent = _agent(session)
        seen = agent.exec_run(["cat", "/opt/tool/README"])
        assert seen.output.decode() == "the project's toolchain\n"
        assert agent.image.tags[0] == session.plan.agent_image
    finally:
        session.teardown()


@pytest.mark.usefixtures("project_images")
def test_a_folder_the_user_never_trusted_is_not_built(
    session_env: Env, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    # As the agent of an earlier session could leave it: nothing is built, nothing starts.
    workspace = _workspace(tmp_path, "RUN echo built\n")
    before = {i.id for i in docker_client.images.list(name="ironcurtain/project-*")}
    session = session_env.session(workspace, "(untrusted)")
    try:
        with pytest.raises(Refused, match="ironcurtain images trust"):
            session.prepare()
    finally:
        session.teardown()
    assert {i.id for i in docker_client.images.list(name="ironcurtain/project-*")} == before


@pytest.mark.usefixtures("project_images")
@pytest.mark.parametrize(
    ("steps", "named"),
    [
        ("RUN cp /bin/sh /usr/local/bin/rootsh && chmod u+s /usr/local/bin/rootsh\n",
         "/usr/local/bin/rootsh is setuid"),
        ("RUN printf '#!/bin/sh\\nexec \"$@\"\\n' > /usr/bin/sudo && chmod 755 /usr/bin/sudo\n",
         "/usr/bin/sudo: sudo is a way up"),
        ("USER root\nRUN true\nUSER root\n", "runs as 'root'"),
    ],
)  # fmt: skip
def test_a_weakened_project_image_is_refused_before_anything_starts(
    session_env: Env, tmp_path: Path, docker_client: docker.DockerClient, steps: str, named: str
) -> None:
    workspace = _workspace(tmp_path, steps)
    if "runs as" in named:  # the last USER wins: end on root
        dockerfile = workspace / ".ironcurtain" / "agent.Dockerfile"
        dockerfile.write_text(dockerfile.read_text().removesuffix("USER agent\n"))
    _trusted(session_env, workspace)  # trusted by mistake: the checks still refuse it
    session = session_env.session(workspace, "(weakened image)")
    try:
        with pytest.raises(Refused) as refused:
            session.prepare()
        assert named in str(refused.value), refused.value
        project = session.name.project
        label = f"com.docker.compose.project={project}"
        assert not docker_client.containers.list(all=True, filters={"label": label})
    finally:
        session.teardown()
