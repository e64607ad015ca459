"""Properties: on a real tree with random symlinks, an allowed path never reaches outside the
workspace or a protected file (checked by the kernel: inode identity); no matching rule: deny."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ironcurtain.policy import Call, Effect, Engine, FsResolver, LexicalResolver, load_policy

REPO = Path(__file__).resolve().parents[3]
PARTS = ["a", "b", "..", ".", "", "l0", "l1", "l2", ".env", "f.txt", "A", "a/"]
TARGETS = [
    "ws",
    "ws/a",
    "ws/a/b",
    "ws/.env",
    "outside",
    "outside/f.txt",
    "state",
    "ws/a/l0",
    "/",
    "..",
]


def _build(root: Path, links: list[tuple[str, str]]) -> None:
    for d in ("ws/a/b", "outside", "state"):
        (root / d).mkdir(parents=True)
    for f in ("ws/f.txt", "ws/a/f.txt", "ws/.env", "outside/f.txt", "state/f.txt"):
        (root / f).write_text("x")
    for where, target in links:
        link = root / where
        if not link.exists() and not link.is_symlink():
            os.symlink(target if target in ("/", "..") else str(root / target), link)


def _inodes(top: Path) -> set[tuple[int, int]]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(top):  # does not follow symlinks
        for name in [".", *dirnames, *filenames]:
            st_ = os.lstat(os.path.join(dirpath, name))
            found.add((st_.st_dev, st_.st_ino))
    return found


links = st.lists(
    st.tuples(
        st.sampled_from(["ws/l0", "ws/l1", "ws/a/l2", "ws/a/l0", "ws/l2"]), st.sampled_from(TARGETS)
    ),
    max_size=5,
)
paths = st.lists(st.sampled_from(PARTS), min_size=1, max_size=7).map("/".join)


@settings(max_examples=150, deadline=None)
@given(links=links, raw=paths, absolute=st.booleans())
def test_an_allowed_path_is_inside_the_workspace_and_not_protected_on_disk(
    links: list[tuple[str, str]], raw: str, absolute: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        _build(root, links)
        ws = root / "ws"
        variables = {
            "workspace": str(ws),
            "policy_dir": str(root / "policy"),
            "audit_dir": str(root / "audit"),
            "state_dir": str(root / "state"),
            "ca_dir": str(root / "ca"),
            "secrets_dir": str(root / "secrets"),
        }
        engine = Engine(
            load_policy(REPO / "policy" / "policy.yaml", variables), FsResolver(), lambda: 0.0
        )
        arg = f"{ws}/{raw}" if absolute else raw
        decision = engine.decide(Call("filesystem", "read_text_file", {"path": arg}))
        target = arg if absolute else f"{ws}/{raw}"
        if decision.effect is Effect.ALLOW and os.path.exists(target):
            st_ = os.stat(target)  # the kernel follows every link: what the backend would open
            inside = _inodes(ws)
            assert (st_.st_dev, st_.st_ino) in inside, (arg, links)
            env = os.stat(ws / ".env")
            assert (st_.st_dev, st_.st_ino) != (env.st_dev, env.st_ino), (arg, links)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
VARS = {
    "workspace": "/ws",
    "policy_dir": "/p",
    "audit_dir": "/au",
    "state_dir": "/s",
    "ca_dir": "/c",
    "secrets_dir": "/sec",
}
POLICY = load_policy(REPO / "policy" / "policy.yaml", VARS)
TOOLS = sorted((s.name, t) for s in POLICY.servers.values() for t in s.tools)


@settings(max_examples=300, deadline=None)
@given(
    tool=st.sampled_from(TOOLS),
    arguments=st.dictionaries(
        st.sampled_from(["path", "paths", "url", "repo_path", "source", "destination", "x"]),
        json_values | st.sampled_from(["/ws/a", "/etc", "https://example.com", "/ws/.env"]),
        max_size=3,
    ),
)
def test_without_rules_every_call_is_denied(tool: tuple[str, str], arguments: dict) -> None:
    engine = Engine(replace(POLICY, rules=()), LexicalResolver(), lambda: 0.0)
    assert engine.decide(Call(tool[0], tool[1], arguments)).effect is Effect.DENY


@settings(max_examples=300, deadline=None)
@given(
    tool=st.sampled_from(TOOLS),
    arguments=st.dictionaries(
        st.sampled_from(["path", "paths", "url", "repo_path", "source", "destination", "files"]),
        json_values | st.sampled_from(["/ws/a", "/etc", "https://docs.python.org", "/ws/.env"]),
        max_size=3,
    ),
)
def test_only_a_named_rule_can_allow_or_escalate(tool: tuple[str, str], arguments: dict) -> None:
    engine = Engine(POLICY, LexicalResolver(), lambda: 0.0)
    decision = engine.decide(Call(tool[0], tool[1], arguments))
    by_name = {r.name: r for r in POLICY.rules}
    if decision.effect is not Effect.DENY:
        assert by_name[decision.rule].effect is decision.effect
