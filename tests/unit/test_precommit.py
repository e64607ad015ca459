"""The git hooks are the lint tools of .venv: local hooks only, so installing them downloads
nothing, and they run what `make lint` runs."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_every_hook_is_local_and_runs_a_tool_of_the_venv() -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = config["repos"][0]["hooks"]
    assert {hook["language"] for hook in hooks} == {"system"}
    assert all(hook["entry"].startswith(".venv/bin/") for hook in hooks)


def test_the_hooks_run_ruff_the_contracts_and_mypy() -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    tools = {hook["entry"].split()[0] for hook in config["repos"][0]["hooks"]}
    assert tools == {".venv/bin/ruff", ".venv/bin/lint-imports", ".venv/bin/mypy"}
