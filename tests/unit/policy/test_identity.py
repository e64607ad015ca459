"""The engine and the backend mean the same file (issue #14, finding 2), on a real tree with the
real resolver: a name that is not there but normalises to one that is (NFC, NFD, NFKC, case),
hard links to a protected file, and git arguments that carry a path (revisions, ranges,
pathspecs, branch names). Each refusal has its control."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ironcurtain.policy import Call, Effect, Engine, FsResolver, load_policy
from ironcurtain.policy.gitargs import GitArgumentError, revision_paths

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    ws = tmp_path.resolve() / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "main.py").write_text("print()")
    (ws / ".env").write_text("SECRET=1")
    return ws


@pytest.fixture
def engine(ws: Path) -> Engine:
    root = ws.parent
    variables = {"workspace": str(ws)} | {
        k: str(root / k) for k in ("policy_dir", "audit_dir", "state_dir", "ca_dir", "secrets_dir")
    }
    return Engine(
        load_policy(REPO / "policy" / "policy.yaml", variables), FsResolver(), lambda: 0.0
    )


def _decide(engine: Engine, server: str, tool: str, **arguments: Any) -> tuple[Effect, str]:
    decision = engine.decide(Call(server, tool, arguments))
    return decision.effect, decision.rule


def _read(engine: Engine, path: str) -> tuple[Effect, str]:
    return _decide(engine, "filesystem", "read_text_file", path=path)


# -- names that normalise to an existing entry ------------------------------------------------

NFD_E = "e\u0301"  # e + combining acute: NFD of é
NFC_E = "\u00e9"


@pytest.mark.parametrize(
    ("on_disk", "asked"),
    [
        (f"caf{NFD_E}", f"caf{NFC_E}"),  # the NFD entry, asked in NFC
        (f"caf{NFC_E}", f"caf{NFD_E}"),  # and the other way round
        ("Notes", "notes"),  # case
        (f"caf{NFD_E}", f"caf{NFC_E}/x"),  # a missing folder whose look-alike exists
    ],
)
def test_a_missing_name_equivalent_to_an_existing_entry_is_refused(
    engine: Engine, ws: Path, on_disk: str, asked: str
) -> None:
    """The npm filesystem server falls back to the equivalent entry: here a link to .env.
    (An NFD spelling in a request is refused already as look-alike unicode.)"""
    (ws / on_disk).symlink_to(ws / ".env")
    assert _read(engine, f"{ws}/{asked}")[0] is Effect.DENY
    effect, _ = _decide(engine, "filesystem", "write_file", path=f"{ws}/{asked}", content="")
    assert effect is Effect.DENY


def test_a_new_name_with_no_look_alike_is_allowed(engine: Engine, ws: Path) -> None:
    (ws / f"caf{NFC_E}").write_text("x")
    assert _read(engine, f"{ws}/caf{NFC_E}") == (Effect.ALLOW, "workspace-read")  # itself
    assert _read(engine, f"{ws}/src/new.py") == (Effect.ALLOW, "workspace-read")
    effect, _ = _decide(engine, "filesystem", "write_file", path=f"{ws}/th{NFC_E}", content="")
    assert effect is Effect.ALLOW


# -- hard links ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["notes.txt", "src/readme", "x.ENV.bak"])
def test_a_hard_link_to_a_protected_file_is_refused_by_any_name(
    engine: Engine, ws: Path, name: str
) -> None:
    os.link(ws / ".env", ws / name)
    assert _read(engine, name) == (Effect.DENY, "protected-path")
    assert _read(engine, f"{ws}/{name}") == (Effect.DENY, "protected-path")
    effect, _ = _decide(engine, "filesystem", "write_file", path=name, content="")
    assert effect is Effect.DENY


def test_a_file_with_one_name_is_read_and_a_symlinked_name_for_env_is_not(
    engine: Engine, ws: Path
) -> None:
    assert _read(engine, "src/main.py") == (Effect.ALLOW, "workspace-read")
    (ws / "env-link").symlink_to(ws / ".env")
    assert _read(engine, "env-link") == (Effect.DENY, "protected-path")


# -- git arguments that carry a path ------------------------------------------------------------


@pytest.mark.parametrize(
    "revision",
    [":.env", "HEAD:.env", ":0:.env", ":2:.env", "HEAD~1:.env", "main..HEAD:.env",
     "HEAD...main:src/.env", "HEAD:./.env", "HEAD:src/../.env", "HEAD:.ENV", "HEAD:x.pem"],
)  # fmt: skip
def test_a_revision_naming_a_protected_file_is_refused(
    engine: Engine, ws: Path, revision: str
) -> None:
    effect, rule = _decide(engine, "git", "git_show", repo_path=str(ws), revision=revision)
    assert (effect, rule) == (Effect.DENY, "protected-path")


@pytest.mark.parametrize("tool_argument", [("git_diff", "target"), ("git_branch", "contains")])
def test_every_revision_argument_is_checked(
    engine: Engine, ws: Path, tool_argument: tuple[str, str]
) -> None:
    tool, argument = tool_argument
    effect, rule = _decide(engine, "git", tool, repo_path=str(ws), **{argument: "HEAD:.env"})
    assert (effect, rule) == (Effect.DENY, "protected-path")
    effect, _ = _decide(engine, "git", tool, repo_path=str(ws), **{argument: "HEAD~2"})
    assert effect is Effect.ALLOW


@pytest.mark.parametrize(
    "revision", ["HEAD", "HEAD~3", "main..HEAD", "v1.2^{commit}", "HEAD:src/main.py", "@{1}"]
)
def test_a_plain_revision_or_an_ordinary_file_in_one_is_allowed(
    engine: Engine, ws: Path, revision: str
) -> None:
    effect, _ = _decide(engine, "git", "git_show", repo_path=str(ws), revision=revision)
    assert effect is Effect.ALLOW


@pytest.mark.parametrize(
    "revision", ["--output=/tmp/x", "HEAD --stat", "HEAD..-x", ":/fix the bug", ":/secret", ""]
)
def test_a_revision_that_is_an_option_a_search_or_odd_is_refused(
    engine: Engine, ws: Path, revision: str
) -> None:
    effect, _ = _decide(engine, "git", "git_show", repo_path=str(ws), revision=revision)
    assert effect is Effect.DENY


def test_revision_paths_reads_stages_ranges_and_the_index() -> None:
    assert revision_paths("HEAD") == ()
    assert revision_paths(":0:a/b") == ("a/b",)
    assert revision_paths("a..b:c") == ("c",)
    assert revision_paths("HEAD:a/../b") == ("a/../b",)  # its `..` is a folder, not a range
    for odd in ("-p", "a:x...b:y", "a..-p"):
        with pytest.raises(GitArgumentError):
            revision_paths(odd)


@pytest.mark.parametrize("pathspec", [".", "src/..", "*", ":(glob)*", ":!x", "*.env", "[.]env"])
def test_git_add_of_a_folder_holding_a_protected_file_or_a_wildcard_is_refused(
    engine: Engine, ws: Path, pathspec: str
) -> None:
    effect, _ = _decide(engine, "git", "git_add", repo_path=str(ws), files=[pathspec])
    assert effect is Effect.DENY


@pytest.mark.parametrize("pathspec", ["src", "src/", "./src", "src/deeper/.."])
def test_git_add_of_a_folder_holding_a_hard_link_to_a_protected_file_is_refused(
    engine: Engine, ws: Path, pathspec: str
) -> None:
    """`ln .env src/notes.txt`, then `git add src`: the file staged is .env by another name."""
    (ws / "src" / "deeper").mkdir()
    os.link(ws / ".env", ws / "src" / "deeper" / "notes.txt")
    effect, rule = _decide(engine, "git", "git_add", repo_path=str(ws), files=[pathspec])
    assert (effect, rule) == (Effect.DENY, "protected-path")


def test_git_add_of_ordinary_files_and_folders_is_allowed(engine: Engine, ws: Path) -> None:
    (ws / "src" / ".git" / "objects").mkdir(parents=True)  # a local clone's linked objects
    (ws / "src" / ".git" / "objects" / "pack").write_text("x")
    os.link(ws / "src" / ".git" / "objects" / "pack", ws / "src" / ".git" / "objects" / "pack2")
    effect, rule = _decide(
        engine, "git", "git_add", repo_path=str(ws), files=["src/main.py", "src"]
    )
    assert (effect, rule) == (Effect.ALLOW, "git-local-changes")


@pytest.mark.parametrize("branch", [".env", "-f", "--", "a..b", "x.lock", "HEAD:.env", "a b"])
def test_a_branch_name_that_is_a_protected_path_or_no_branch_name_is_refused(
    engine: Engine, ws: Path, branch: str
) -> None:
    effect, _ = _decide(engine, "git", "git_checkout", repo_path=str(ws), branch_name=branch)
    assert effect is Effect.DENY


def test_an_ordinary_branch_name_is_allowed(engine: Engine, ws: Path) -> None:
    (ws / "Feature").mkdir()  # a look-alike folder is no concern for a ref name
    for branch in ("main", "feature/x", "fix-14"):
        effect, _ = _decide(engine, "git", "git_checkout", repo_path=str(ws), branch_name=branch)
        assert effect is Effect.ALLOW, branch


def test_a_refusal_never_names_what_a_folder_outside_the_workspace_holds(
    engine: Engine, ws: Path
) -> None:
    """The reason reaches the agent: it must not list a folder the agent cannot read."""
    outside = ws.parent / "outside"
    outside.mkdir()
    (outside / "Secret-Name-7f3a.txt").write_text("x")
    (outside / "linked").write_text("y")
    os.link(outside / "linked", outside / "second-name-91c2")
    for asked in ("secret-name-7f3a.txt", "linked"):
        decision = engine.decide(
            Call("filesystem", "read_text_file", {"path": f"{outside}/{asked}"})
        )
        assert decision.effect is Effect.DENY
        assert "Secret-Name" not in decision.reason
        assert "second-name" not in decision.reason
        assert "2 names" not in decision.reason
