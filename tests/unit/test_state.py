from pathlib import Path

import pytest

from ironcurtain.state import member_token_file, shared_dir, state_dir


def test_state_dir_follows_the_override_then_xdg_then_home() -> None:
    assert state_dir({"IRONCURTAIN_STATE_DIR": "/s"}) == Path("/s")
    assert state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/ironcurtain")
    assert state_dir({"HOME": "/h"}) == Path("/h/.local/state/ironcurtain")


def test_an_empty_override_counts_as_unset() -> None:
    assert state_dir({"IRONCURTAIN_STATE_DIR": "", "HOME": "/h"}) == Path(
        "/h/.local/state/ironcurtain"
    )


def test_without_an_environment_the_process_one_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRONCURTAIN_STATE_DIR", "/from-process")
    assert state_dir() == Path("/from-process")
    assert member_token_file() == Path("/from-process/member_token")


def test_the_shared_folder_has_its_own_override() -> None:
    assert shared_dir({"IRONCURTAIN_STATE_DIR": "/s"}) == Path("/s/shared")
    assert shared_dir({"IRONCURTAIN_STATE_DIR": "/s", "IRONCURTAIN_SHARED_DIR": "/t"}) == Path("/t")
