import os
import stat
from pathlib import Path

import pytest

from ironcurtain.session.layout import SessionLayout
from ironcurtain.session.naming import SessionName


@pytest.fixture
def layout(tmp_path: Path) -> SessionLayout:
    layout = SessionLayout.for_session(tmp_path, SessionName("app-abc123", "0123abcd"))
    layout.create()
    return layout


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_secrets_folder_is_private(layout: SessionLayout) -> None:
    assert _mode(layout.secrets) == 0o700


def test_a_secret_without_a_reader_is_owner_only(layout: SessionLayout) -> None:
    path = layout.write_secret("fake_key", "sk-ant-api03-fake")
    assert _mode(path) == 0o600
    assert path.read_text() == "sk-ant-api03-fake"


def test_a_secret_for_a_container_user_is_readable_by_that_user_only(
    layout: SessionLayout,
) -> None:
    path = layout.write_secret("real_key", "value", reader_uid=10001)
    if os.geteuid() == 0:
        assert (path.stat().st_uid, _mode(path)) == (10001, 0o400)
    else:
        assert _mode(path) == 0o444  # only reachable through the 0700 folder
        assert _mode(layout.secrets) == 0o700


def test_teardown_removes_secrets_orientation_and_sockets_but_keeps_the_audit(
    layout: SessionLayout,
) -> None:
    layout.write_secret("k", "v")
    (layout.agent / "mcp.json").write_text("{}")
    (layout.rooms / "git").mkdir(mode=0o700, parents=True)
    os.mknod(layout.rooms / "git" / "git.sock", 0o600 | stat.S_IFSOCK)  # a killed room's socket
    layout.room_servers.mkdir(mode=0o700)
    layout.write_room_server("git", "{}")
    (layout.audit / "mcp.jsonl").write_text("{}\n")
    layout.summary.write_text("{}")
    layout.remove_ephemeral()
    assert not layout.rooms.exists()
    assert not layout.room_servers.exists()
    assert not layout.secrets.exists()
    assert not layout.agent.exists()
    assert (layout.audit / "mcp.jsonl").exists()
    assert layout.summary.exists()


def test_the_anchor_folder_is_private_and_outlives_the_session(layout: SessionLayout) -> None:
    assert _mode(layout.anchor) == 0o700
    (layout.anchor / "mcp.key").write_text("k")
    (layout.anchor / "mcp.checkpoints").write_text("")
    layout.remove_ephemeral()
    assert (layout.anchor / "mcp.key").exists()  # `ironcurtain audit verify` needs it later
    assert (layout.anchor / "mcp.checkpoints").exists()
