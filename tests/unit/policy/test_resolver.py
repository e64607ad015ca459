"""Symlink games on a real tree, decided with the real resolver: a table of cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ironcurtain.policy import Call, Effect, Engine, FsResolver, load_policy

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path.resolve()
    ws, outside, state = root / "ws", root / "outside", root / "state"
    for d in (ws / "src", outside / "deep", state):
        d.mkdir(parents=True)
    (ws / "src" / "main.py").write_text("print()")
    (ws / ".env").write_text("SECRET=1")
    (outside / "deep" / "secret.txt").write_text("x")
    links = {
        "ws/inside": "ws/src",  # a link that stays inside
        "ws/escape": "outside",  # a link out of the workspace
        "ws/deeplink": "outside/deep",  # `deeplink/..` is outside/, not ws/
        "ws/envlink": "ws/.env",  # a harmless name for a protected file
        "ws/statelink": "state",  # into IronCurtain's state
        "ws/loop": "ws/loop",  # a link to itself
    }
    for link, target in links.items():
        os.symlink(root / target, root / link)
    return {"root": root, "ws": ws, "state": state}


@pytest.fixture
def engine(tree: dict[str, Path]) -> Engine:
    root = tree["root"]
    variables = {
        "workspace": str(tree["ws"]),
        "policy_dir": str(root / "policy"),
        "audit_dir": str(root / "audit"),
        "state_dir": str(tree["state"]),
        "ca_dir": str(root / "ca"),
        "secrets_dir": str(root / "secrets"),
    }
    return Engine(
        load_policy(REPO / "policy" / "policy.yaml", variables), FsResolver(), lambda: 0.0
    )


CASES = [
    ("src/main.py", "workspace-read"),
    ("inside/main.py", "workspace-read"),
    ("inside/../src/main.py", "workspace-read"),
    ("src/new-file.py", "workspace-read"),  # not there yet: its directory is resolved
    ("escape/deep/secret.txt", "outside-workspace"),
    ("escape", "outside-workspace"),
    ("deeplink/../deep/secret.txt", "outside-workspace"),
    ("deeplink/..", "outside-workspace"),
    ("escape/new-file", "outside-workspace"),
    ("envlink", "protected-path"),
    (".env", "protected-path"),
    ("statelink/anything", "protected-path"),
    ("loop", "workspace-read"),  # the backend's open() fails with ELOOP; nothing escapes
]


@pytest.mark.parametrize(("raw", "rule"), CASES)
def test_symlinks_are_followed_before_containment(
    engine: Engine, tree: dict[str, Path], raw: str, rule: str
) -> None:
    decision = engine.decide(Call("filesystem", "read_text_file", {"path": raw}))
    assert decision.rule == rule, decision
    absolute = engine.decide(Call("filesystem", "read_text_file", {"path": f"{tree['ws']}/{raw}"}))
    assert absolute.rule == rule, absolute
    assert (decision.effect is Effect.ALLOW) == (rule == "workspace-read")
