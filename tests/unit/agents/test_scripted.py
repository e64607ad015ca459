"""The scripted test agent's adapter: fake key only, its command, and readable output."""

from __future__ import annotations

import json

from ironcurtain.agents.adapter import Endpoints
from ironcurtain.agents.registry import adapter_for

ENDPOINTS = Endpoints("http://sidecar:8080/mcp", "http://sidecar:3128", "/run/ca.pem")


def test_the_environment_carries_the_doors_and_the_fake_key_only() -> None:
    env = adapter_for("scripted").environment(ENDPOINTS, {"anthropic": "sk-ant-api03-FAKE"})
    assert env["HTTPS_PROXY"] == "http://sidecar:3128"
    assert env["IRONCURTAIN_MCP_URL"] == "http://sidecar:8080/mcp"
    assert env["IRONCURTAIN_ANTHROPIC_FAKE_KEY"] == "sk-ant-api03-FAKE"


def test_the_task_is_one_argument_of_the_script() -> None:
    argv = adapter_for("scripted").oneshot_command("fix; rm -rf /")
    assert argv == ["python3", "-m", "ironcurtain.agents.scripted_agent", "fix; rm -rf /"]


def test_steps_render_and_the_answer_is_the_last_answer_step() -> None:
    adapter = adapter_for("scripted")
    lines = [
        json.dumps({"step": "llm", "status": 200, "text": "hi"}),
        json.dumps({"step": "tool", "tool": "fs__read", "is_error": True, "text": "denied"}),
        json.dumps({"step": "answer", "text": "done"}),
    ]
    assert adapter.render(lines[0]) == "[llm] 200 hi"
    assert adapter.render(lines[1]) == "[tool] fs__read -> error: denied"
    assert adapter.final_answer(lines) == "done"
