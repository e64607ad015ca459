import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.session.naming import SessionName, new_session_id, session_name, worktree_slug

COMPOSE_PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def test_two_checkouts_with_the_same_folder_name_get_different_slugs(tmp_path: Path) -> None:
    a, b = tmp_path / "x" / "app", tmp_path / "y" / "app"
    assert worktree_slug(a) != worktree_slug(b)
    assert worktree_slug(a).startswith("app-")


def test_sessions_of_one_worktree_differ_by_session_id(tmp_path: Path) -> None:
    assert session_name(tmp_path).project != session_name(tmp_path).project


def test_session_ids_are_eight_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{8}", new_session_id())


@given(st.text(max_size=80))
def test_any_folder_name_gives_a_valid_compose_project_that_parses_back(name: str) -> None:
    if "/" in name or name in {"", ".", ".."} or "\0" in name:
        return
    session = session_name(Path("/tmp") / name, "0123abcd")
    assert COMPOSE_PROJECT.match(session.project), session.project
    assert SessionName.parse(session.project) == session


def test_projects_that_are_not_ours_do_not_parse() -> None:
    assert SessionName.parse("myapp") is None
    assert SessionName.parse("ic-app-abc123-nothex!!") is None
    assert SessionName.parse("ic-app-abc123-0123abcd-extra") is None
