"""The builtin agent's adapter: fake key and budgets in its environment, its command, readable
output, and which budget ended a session; `run --budget` refused for other agents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ironcurtain.agents.adapter import Endpoints
from ironcurtain.agents.builtin import Builtin
from ironcurtain.agents.builtin_budget import Budgets
from ironcurtain.agents.registry import adapter_for
from ironcurtain.cli import main

ENDPOINTS = Endpoints("http://sidecar:8080/mcp", "http://sidecar:3128", "/run/ca.pem")


def test_it_is_registered_with_its_own_image_and_anthropic_only() -> None:
    adapter = adapter_for("builtin")
    assert (adapter.image, adapter.providers) == ("agent-builtin", ("anthropic",))


def test_the_environment_carries_the_doors_the_fake_key_and_the_budgets() -> None:
    adapter = Builtin(budgets=Budgets(steps=7, tokens=None))
    env = adapter.environment(ENDPOINTS, {"anthropic": "sk-ant-api03-FAKE"})
    assert env["HTTPS_PROXY"] == "http://sidecar:3128"
    assert env["NO_PROXY"] == "sidecar"
    assert env["IRONCURTAIN_MCP_URL"] == "http://sidecar:8080/mcp"
    assert env["IRONCURTAIN_CA_CERT"] == "/run/ca.pem"
    assert env["IRONCURTAIN_ANTHROPIC_FAKE_KEY"] == "sk-ant-api03-FAKE"
    assert env["IRONCURTAIN_BUILTIN_BUDGETS"] == "tokens=off,steps=7,seconds=1800,cost_usd=5.0"


def test_interactive_is_our_repl() -> None:
    argv = adapter_for("builtin").interactive_command()
    assert argv == ["python3", "-m", "ironcurtain.agents.builtin_agent", "--interactive"]


def test_the_task_is_one_argument() -> None:
    argv = adapter_for("builtin").oneshot_command("fix; rm -rf /")
    assert argv == ["python3", "-m", "ironcurtain.agents.builtin_agent", "fix; rm -rf /"]


def _lines(*events: dict) -> list[str]:
    return [json.dumps(e) for e in events]


def test_steps_render_as_one_line_each() -> None:
    adapter = Builtin()
    rendered = [
        adapter.render(line)
        for line in _lines(
            {"step": "start", "tools": 3, "model": "m", "budgets": "steps=2"},
            {"step": "llm", "n": 1, "stop_reason": "tool_use", "input_tokens": 5,
             "output_tokens": 6, "text": "Reading."},
            {"step": "code", "code": "a = 1\nb = 2\nc = 3\nd = 4\n"},
            {"step": "result", "exit_code": 1, "stopped": None, "stdout": "x\ny",
             "stderr": "PolicyDenied"},
            {"step": "result", "exit_code": None, "stopped": "deadline", "stdout": "",
             "stderr": ""},
            {"step": "budget", "budget": "steps", "text": "step budget exhausted (2 of 2 steps)"},
        )
    ]  # fmt: skip
    assert rendered == [
        "[agent] builtin: 3 tools, model m, budgets steps=2",
        "[llm] step 1: tool_use (tokens in 5, out 6) Reading.",
        "[code] a = 1 | b = 2 | c = 3 (+1 lines)",
        "[result] exit 1: x y ! PolicyDenied",
        "[result] stopped (deadline)",
        "[budget] steps: step budget exhausted (2 of 2 steps)",
    ]
    assert adapter.render("not json\n") == "not json"


def test_the_answer_and_which_budget_ended_it() -> None:
    adapter = Builtin()
    answered = _lines({"step": "llm", "n": 1}, {"step": "answer", "text": "done"})
    assert adapter.final_answer(answered) == "done"
    assert adapter.failure(answered) is None
    stopped = _lines({"step": "budget", "budget": "tokens", "text": "token budget exhausted (x)"})
    assert adapter.final_answer(stopped) == "stopped: token budget exhausted (x)"
    assert adapter.failure(stopped) == "token budget exhausted (x)"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--agent", "scripted", "--budget", "steps=2"], "--budget is for --agent builtin"),
        (["--agent", "builtin", "--budget", "steps=0"], "must be positive"),
        (["--agent", "builtin", "--budget", "hours=2"], "expected NAME=VALUE"),
    ],
)
def test_a_budget_for_another_agent_or_a_bad_one_is_refused_before_anything_starts(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--task", "t", "--no-build", *args]) == 2
    assert said in capsys.readouterr().out


def _chosen(monkeypatch: pytest.MonkeyPatch, *args: str) -> Budgets | None:
    from ironcurtain.session import run

    seen: list[run.Options] = []
    monkeypatch.setattr(run, "run_session", lambda options: seen.append(options) or 0)
    assert main(["run", "--task", "t", "--no-build", "--agent", "builtin", *args]) == 0
    return seen[0].budgets


def test_budgets_come_from_the_user_config_and_run_budget_outranks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ironcurtain" / "config.toml"
    config.parent.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("IRONCURTAIN_BUILTIN_BUDGETS", raising=False)
    assert _chosen(monkeypatch) == Budgets()
    config.write_text('builtin_budgets = "steps=9,cost_usd=off"\n')
    assert _chosen(monkeypatch) == Budgets(steps=9, cost_usd=None)
    assert _chosen(monkeypatch, "--budget", "steps=3") == Budgets(steps=3)


def test_a_bad_budget_in_the_user_config_is_refused_before_anything_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "ironcurtain" / "config.toml"
    config.parent.mkdir()
    config.write_text('builtin_budgets = "steps=lots"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("IRONCURTAIN_BUILTIN_BUDGETS", raising=False)
    assert main(["run", "--task", "t", "--no-build", "--agent", "builtin"]) == 2
    assert "budget steps='lots': not a number" in capsys.readouterr().out
