"""The agent is the user: it runs as the workspace's owner, and so do the MCP proxy's rooms that
write files, so what either writes is the user's and no file of the user changes owner."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from ironcurtain.session.run import Session

from .conftest import Env
from .test_escape import CALL

OWNERS = [(1000, 1000), (4242, 4343)]  # a typical first user; a uid and gid the image never knew


@pytest.fixture(params=OWNERS, ids=lambda o: f"{o[0]}:{o[1]}")
def started(
    request: pytest.FixtureRequest, session_env: Env, tmp_path: Path
) -> Iterator[tuple[Session, Path, tuple[int, int]]]:
    uid, gid = request.param
    workspace = tmp_path / "project"
    workspace.mkdir()
    (workspace / "mine.txt").write_text("the user's own file\n")
    (workspace / "src").mkdir()
    for path in (workspace, workspace / "mine.txt", workspace / "src"):
        os.chown(path, uid, gid)
    session = session_env.session(workspace, "(identity)")
    try:
        session.prepare()
        session.up()
        session.check_isolation()  # includes: the agent runs as exactly this owner
        yield session, workspace, (uid, gid)
    finally:
        session.teardown()


def _agent(session: Session) -> docker.models.containers.Container:
    label = f"com.docker.compose.project={session.name.project}"
    (agent,) = [
        c
        for c in session.client.containers.list(filters={"label": label})
        if c.labels["com.docker.compose.service"] == "agent"
    ]
    return agent


def test_files_the_agent_and_its_tools_write_are_the_workspace_owners(
    started: tuple[Session, Path, tuple[int, int]],
) -> None:
    session, workspace, (uid, gid) = started
    agent = _agent(session)
    who = agent.exec_run(["sh", "-c", 'id -u; id -g; id -un; echo "$HOME"; touch "$HOME/ok"'])
    assert who.exit_code == 0, who.output
    assert who.output.decode().split() == [str(uid), str(gid), "agent", "/home/agent"]
    # A shell write, a new folder tree and an MCP tool's write (in the filesystem room).
    done = agent.exec_run(
        ["sh", "-c", "echo hi > /workspace/by-shell.txt && mkdir -p /workspace/src/a/b && "
         "echo x > /workspace/src/a/b/f"]
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    arguments = {"path": "/workspace/by-tool.txt", "content": "written by a tool\n"}
    called = agent.exec_run(
        ["python3", "-c", CALL, "filesystem__write_file", json.dumps(arguments)]
    )
    assert called.output.decode().startswith("OK"), called.output
    written = [workspace / "by-shell.txt", workspace / "by-tool.txt", workspace / "src" / "a"]
    for path in [*written, *(workspace / "src" / "a").rglob("*")]:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (uid, gid), path
    # Nothing of the user's changed owner.
    for path in (workspace, workspace / "mine.txt", workspace / "src"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (uid, gid), path


def test_control_the_agent_cannot_become_root_or_write_outside_its_own(
    started: tuple[Session, Path, tuple[int, int]],
) -> None:
    agent = _agent(started[0])
    # The passwd and group files are ours and read-only; no way to root through them.
    tried = agent.exec_run(
        [
            "sh",
            "-c",
            "echo 'x::0:0::/:/bin/sh' 2>/dev/null >>/etc/passwd; echo rc=$?; grep -c . /etc/passwd",
        ]
    )
    # stderr is dropped: its interleaving with stdout is not ordered.
    lines = tried.output.decode().split()
    assert lines[0] != "rc=0", lines
    assert lines[-1] == "3", lines
