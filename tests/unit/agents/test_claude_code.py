import dataclasses
import json

import pytest

from ironcurtain.agents.adapter import Endpoints
from ironcurtain.agents.claude_code import FAKE_KEY_ENV, MCP_CONFIG, ClaudeCode
from ironcurtain.agents.registry import adapter_for

ENDPOINTS = Endpoints(
    mcp_url="http://sidecar:8080/mcp",
    https_proxy="http://sidecar:3128",
    ca_cert="/run/ironcurtain/ca.pem",
)
FAKE = "sk-ant-api03-FAKE-" + "0" * 48


def test_environment_holds_only_the_fake_key_and_the_doors() -> None:
    env = ClaudeCode().environment(ENDPOINTS, {"anthropic": FAKE})
    assert env[FAKE_KEY_ENV] == FAKE
    assert env["HTTPS_PROXY"] == "http://sidecar:3128"
    assert env["NODE_EXTRA_CA_CERTS"] == "/run/ironcurtain/ca.pem"
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert "ANTHROPIC_API_KEY" not in env
    assert "DOCKER_HOST" not in env


def test_docker_host_only_when_the_session_offers_it() -> None:
    endpoints = dataclasses.replace(ENDPOINTS, docker_host="tcp://sidecar:2375")
    assert ClaudeCode().environment(endpoints, {"anthropic": FAKE})["DOCKER_HOST"] == (
        "tcp://sidecar:2375"
    )


def test_a_missing_fake_key_is_an_error_not_an_empty_key() -> None:
    with pytest.raises(KeyError):
        ClaudeCode().environment(ENDPOINTS, {})


def test_oneshot_streams_json_and_uses_only_our_mcp_server() -> None:
    argv = ClaudeCode().oneshot_command("fix the test")
    assert argv[:3] == ["claude", "-p", "fix the test"]
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert argv[argv.index("--mcp-config") + 1] == MCP_CONFIG
    assert "--strict-mcp-config" in argv


def test_interactive_leaves_our_mcp_tools_to_the_policy_and_only_them() -> None:
    argv = ClaudeCode().interactive_command()
    assert argv[0] == "claude"
    assert "-p" not in argv
    assert argv[argv.index("--mcp-config") + 1] == MCP_CONFIG
    assert "--strict-mcp-config" in argv
    assert argv[argv.index("--allowedTools") + 1] == "mcp__ironcurtain"  # no wider grant
    assert "--dangerously-skip-permissions" not in argv


def test_orientation_marks_onboarding_done_and_trusts_only_the_workspace() -> None:
    files = {f.path: f.content for f in ClaudeCode().orientation_files(ENDPOINTS)}
    state = json.loads(files[".claude.json"])
    assert state["hasCompletedOnboarding"] is True
    assert state["projects"] == {"/workspace": {"hasTrustDialogAccepted": True}}


def test_orientation_points_the_mcp_client_at_the_sidecar() -> None:
    files = {f.path: f.content for f in ClaudeCode().orientation_files(ENDPOINTS)}
    config = json.loads(files["mcp.json"])
    assert config == {"mcpServers": {"ironcurtain": {"type": "http", "url": ENDPOINTS.mcp_url}}}
    assert "wait" in files[".claude/CLAUDE.md"]


STREAM = [
    json.dumps(event)
    for event in (
        {"type": "system", "subtype": "init", "model": "claude-sonnet-4-5"},
        {
            "type": "assistant",
            "message": {
                "content": [
                    {
                        "type": "tool_use",
                        "name": "mcp__ironcurtain__fs__read",
                        "input": {"path": "a"},
                    }
                ]
            },
        },
        {
            "type": "user",
            "message": {
                "content": [
                    {"type": "tool_result", "is_error": True, "content": "denied by rule x"}
                ]
            },
        },
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "done"}]}},
        {"type": "result", "subtype": "success", "result": "All fixed."},
    )
]


def test_stream_renders_tool_calls_results_and_the_answer() -> None:
    shown = [ClaudeCode().render(line) for line in STREAM]
    assert shown[0] == "[agent] started (model claude-sonnet-4-5)"
    assert shown[1] == '[tool] mcp__ironcurtain__fs__read {"path": "a"}'
    assert shown[2] == "[tool result: error] denied by rule x"
    assert shown[3] == "[agent] done"
    assert shown[4] == "[answer] All fixed."


def test_non_json_output_is_shown_as_is_and_hostile_json_is_ignored() -> None:
    adapter = ClaudeCode()
    assert adapter.render("plain text\n") == "plain text"
    assert adapter.render("[1, 2]") == "[1, 2]"
    assert adapter.render('{"type":"user","message":{"content":[7, null]}}') is None
    assert adapter.render('{"type":"assistant","message":{"content":"not a list"}}') is None


def test_final_answer_is_the_last_result() -> None:
    assert ClaudeCode().final_answer(STREAM) == "All fixed."
    assert ClaudeCode().final_answer(STREAM[:-1]) is None


def test_registry_knows_claude_code_and_refuses_unknown_agents() -> None:
    assert adapter_for("claude-code").image == "agent-claude-code"
    with pytest.raises(ValueError, match="unknown agent 'gpt-agent'"):
        adapter_for("gpt-agent")


@pytest.mark.parametrize("agent", ["claude-code", "codex"])
def test_package_tools_trust_the_ca_mounted_at_run_time(agent: str) -> None:
    adapter = adapter_for(agent)
    keys = {p: "sk-FAKE" for p in adapter.providers}
    env = adapter.environment(ENDPOINTS, keys)
    for name in ("PIP_CERT", "NPM_CONFIG_CAFILE", "IRONCURTAIN_CA_CERT"):
        assert env[name] == "/run/ironcurtain/ca.pem"


@pytest.mark.parametrize("agent", ["claude-code", "codex"])
def test_the_mcp_door_is_reached_directly_and_everything_else_through_the_proxy(
    agent: str,
) -> None:
    # Claude Code sends plain-HTTP MCP requests through HTTPS_PROXY unless NO_PROXY names the host;
    # the MITM refuses plain-HTTP proxying, and Claude Code then reports "needs-auth".
    adapter = adapter_for(agent)
    env = adapter.environment(ENDPOINTS, {p: "sk-FAKE" for p in adapter.providers})
    assert env["NO_PROXY"] == env["no_proxy"] == "sidecar"
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "http://sidecar:3128"


def test_oneshot_allows_every_tool_of_our_mcp_server_and_only_those_without_asking() -> None:
    argv = ClaudeCode().oneshot_command("x")
    assert argv[argv.index("--allowedTools") + 1] == "mcp__ironcurtain"
    assert "--dangerously-skip-permissions" not in argv


def test_tools_are_listed_directly_not_deferred_behind_tool_search() -> None:
    assert ClaudeCode().environment(ENDPOINTS, {"anthropic": FAKE})["ENABLE_TOOL_SEARCH"] == "false"


@pytest.mark.parametrize(
    ("servers", "shown"),
    [
        ([{"name": "ironcurtain", "status": "connected"}], ", MCP server ironcurtain: connected"),
        ([{"name": "ironcurtain", "status": "needs-auth"}], ", MCP server ironcurtain: needs-auth"),
        ([{"name": "other", "status": "connected"}], ", MCP server ironcurtain: missing"),
        ([], ", MCP server ironcurtain: missing"),
        ("garbage", ""),
    ],
)
def test_the_start_line_says_whether_our_mcp_server_connected(servers: object, shown: str) -> None:
    init = {"type": "system", "subtype": "init", "model": "m", "mcp_servers": servers}
    assert ClaudeCode().render(json.dumps(init)) == f"[agent] started (model m{shown})"


def test_calls_claude_code_refused_itself_are_shown_before_the_answer() -> None:
    result = {
        "type": "result",
        "result": "done",
        "permission_denials": [{"tool_name": "Bash", "tool_use_id": "t", "tool_input": {}}, 7],
    }
    assert ClaudeCode().render(json.dumps(result)) == (
        "[refused by Claude Code, not by policy] Bash\n[answer] done"
    )
    assert ClaudeCode().render(json.dumps({**result, "permission_denials": []})) == "[answer] done"
