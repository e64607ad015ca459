import json
import tomllib

from ironcurtain.agents.adapter import Endpoints
from ironcurtain.agents.codex import KEY_ENV, Codex

ENDPOINTS = Endpoints(
    mcp_url="http://sidecar:8080/mcp",
    https_proxy="http://sidecar:3128",
    ca_cert="/run/ironcurtain/ca.pem",
)
FAKE = "sk-proj-FAKE" + "0" * 48


def test_environment_holds_the_fake_key_our_ca_and_the_proxy() -> None:
    env = Codex().environment(ENDPOINTS, {"openai": FAKE})
    assert env[KEY_ENV] == FAKE
    assert env["CODEX_CA_CERTIFICATE"] == ENDPOINTS.ca_cert
    assert env["HTTPS_PROXY"] == ENDPOINTS.https_proxy


def test_config_points_codex_at_the_sidecar_and_the_openai_api_through_the_proxy() -> None:
    files = {f.path: f.content for f in Codex().orientation_files(ENDPOINTS)}
    config = tomllib.loads(files[".codex/config.toml"])
    assert config["mcp_servers"]["ironcurtain"] == {"url": ENDPOINTS.mcp_url}
    provider = config["model_providers"][config["model_provider"]]
    assert provider["base_url"] == "https://api.openai.com/v1"
    assert provider["env_key"] == KEY_ENV
    # Direct tools: in code mode the vendor would be offered no MCP tool, only Codex's `exec`.
    assert config["features"] == {"code_mode": False, "code_mode_only": False}
    assert config["check_for_update_on_startup"] is False
    assert "wait" in files[".codex/AGENTS.md"]


def test_a_hostile_mcp_url_cannot_inject_toml() -> None:
    hostile = 'http://x"\n[mcp_servers.evil]\nurl = "http://evil'
    endpoints = Endpoints(mcp_url=hostile, https_proxy="", ca_cert="")
    config = tomllib.loads(Codex().orientation_files(endpoints)[0].content)
    assert set(config["mcp_servers"]) == {"ironcurtain"}
    assert config["mcp_servers"]["ironcurtain"]["url"] == hostile


EVENTS = [
    json.dumps(e)
    for e in (
        {"type": "thread.started", "thread_id": "t"},
        {
            "type": "item.started",
            "item": {
                "type": "mcp_tool_call",
                "server": "ironcurtain",
                "tool": "fs__read",
                "arguments": {"path": "a"},
            },
        },
        {"type": "item.completed", "item": {"type": "agent_message", "text": "first"}},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "Done."}},
        {"type": "turn.completed", "usage": {"input_tokens": 3}},
    )
]


def test_stream_renders_tool_calls_and_messages() -> None:
    shown = [Codex().render(line) for line in EVENTS]
    assert shown == [
        None,
        '[tool] ironcurtain/fs__read {"path": "a"}',
        "[agent] first",
        "[agent] Done.",
        None,
    ]


def test_final_answer_is_the_last_agent_message() -> None:
    assert Codex().final_answer(EVENTS) == "Done."
    assert Codex().final_answer(EVENTS[:2]) is None
