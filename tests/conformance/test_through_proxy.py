"""The conformance suite through the proxy, in front of our reference backend (fakemcp, a stdio
child of `ironcurtain mcp-proxy serve`): with a policy that allows the backend, every scenario
the proxy carries passes; without the rule for the backend's requests to the client, exactly
the sampling and elicitation scenarios fail; with a deny-all policy, the scenarios that need
the backend fail.

The suite names the reference server's tools and prompts without our `SERVER__` prefix: the
test's relay (relay.py) maps the names, nothing else. Scenarios the proxy does not pass are
listed below, each with its reason; the test fails if one of them starts to pass (update the
list) or if any other scenario fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from ironcurtain.policy.engine import NO_MATCH

from . import suite

SERVER = "ref"
TOOLS = {
    "test_simple_text": {},
    "test_image_content": {},
    "test_audio_content": {},
    "test_embedded_resource": {},
    "test_multiple_content_types": {},
    "test_tool_with_logging": {},
    "test_error_handling": {},
    "test_tool_with_progress": {},
    "test_sampling": {"prompt": "none"},
    "test_elicitation": {"message": "none"},
    "test_elicitation_sep1034_defaults": {},
    "test_elicitation_sep1330_enums": {},
    "json_schema_2020_12_tool": {"name": "none", "address": "none"},
}
ALLOW = f"""\
version: 1
protected: {{paths: ["${{state_dir}}"], names: [".env"]}}
lists: {{workspace: ["${{workspace}}"]}}
servers:
  {SERVER}:
    root: ${{workspace}}
    tools: {json.dumps(TOOLS)}
rules:
  - name: reference-tools
    effect: allow
    reason: the reference backend's tools are harmless
    server: {SERVER}
  - name: reference-resources-and-prompts
    effect: allow
    reason: the reference backend's own test:// resources and its prompts
    server: {SERVER}
    tools: [resources/read, prompts/get]
  - name: reference-asks-the-client
    effect: allow
    reason: the suite's client answers the reference backend's sampling and elicitation
    server: {SERVER}
    tools: [sampling/createMessage, elicitation/create]
"""
DENY_ALL = ALLOW.split("rules:")[0] + "rules: []\n"
ASKED = ("sampling/createMessage", "elicitation/create")

# Not carried by the proxy yet: none. (Progress and log notifications ride the call's SSE
# answer, subscriptions are decided as reads: docs/policy.md.)
NOT_CARRIED: dict[str, str] = {}
# A backend's requests to the client (sampling, elicitation) are forwarded only when a rule
# naming them allows it for that server (the rule above); without it they are refused:
ASKING = {
    "tools-call-sampling",
    "tools-call-elicitation",
    "elicitation-sep1034-defaults",
    "elicitation-sep1330-enums",
}
NO_ASKING = ALLOW.split("  - name: reference-asks-the-client")[0]
# What a deny-all proxy still passes: scenarios that need no backend, and two whose checks
# cannot tell our denial (an isError result with text) from the tool's own answer.
PASS_WHEN_DENIED = {
    "server-initialize",
    "logging-set-level",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "dns-rebinding-protection",
    "server-sse-multiple-streams",
    "tools-call-simple-text",
    "tools-call-error",
}


def through_proxy(tmp_path: Path, policy: str) -> tuple[dict[str, suite.Scenario], list[dict]]:
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "policy.yaml").write_text(policy)
    backend = {"command": sys.executable, "args": ["-m", "ironcurtain.fakemcp"]}
    (folder / "servers.yaml").write_text(yaml.safe_dump({"mcpServers": {SERVER: backend}}))
    (tmp_path / "ws").mkdir()
    audit = tmp_path / "audit" / "session.jsonl"
    proxy = [
        *(suite.PYTHON, "-m", "ironcurtain.cli", "mcp-proxy", "serve"),
        *("--policy", str(folder), "--workspace", str(tmp_path / "ws"), "--audit", str(audit)),
        *("--state-dir", str(tmp_path / "state"), "--host", "127.0.0.1", "--port", "0"),
        *("--sandbox", "inline", "--allowed-host", "127.0.0.1:*", "--allowed-host", "localhost:*"),
    ]
    with suite.started(proxy, "mcp-proxy: serving on") as url:
        relay = [suite.PYTHON, str(Path(__file__).with_name("relay.py")), "--target", url]
        with suite.started([*relay, "--prefix", f"{SERVER}__"], "relay: serving on") as front:
            results = suite.run(front, tmp_path / "results")
    lines = [json.loads(x) for x in audit.read_text().splitlines() if x.strip()]
    return results, lines


def test_every_carried_scenario_passes_through_the_proxy(tmp_path: Path) -> None:
    results, lines = through_proxy(tmp_path, ALLOW)
    failing = {name for name, s in results.items() if not s.passed}
    expected = set(NOT_CARRIED)
    assert failing == expected, {n: results[n].failures for n in failing ^ expected}
    assert len(results) == 30
    allowed = [x for x in lines if x.get("event") == "decision" and x["effect"] == "allow"]
    assert {x["tool"] for x in allowed} >= {
        f"{SERVER}__test_image_content",
        f"{SERVER}__resources/read",
        f"{SERVER}__prompts/get",
    }
    # A subscribe is decided as a read of its URI, and audited so.
    assert (f"{SERVER}__resources/read", "resources/subscribe") in {
        (x["tool"], x.get("request")) for x in allowed
    }


def test_without_a_rule_for_them_the_backends_requests_are_refused(tmp_path: Path) -> None:
    results, lines = through_proxy(tmp_path, NO_ASKING)
    failing = {name for name, s in results.items() if not s.passed}
    assert failing == ASKING, {n: results[n].failures for n in failing ^ ASKING}
    asked = [x for x in lines if x.get("event") == "decision" and x.get("request") in ASKED]
    assert asked
    assert {(x["effect"], x["rule"]) for x in asked} == {("deny", NO_MATCH)}


def test_with_a_deny_all_policy_the_suite_fails(tmp_path: Path) -> None:
    results, lines = through_proxy(tmp_path, DENY_ALL)
    passing = {name for name, s in results.items() if s.passed}
    assert passing == PASS_WHEN_DENIED
    decisions = [x for x in lines if x.get("event") == "decision" and x.get("tool")]
    assert decisions
    assert all(x["effect"] == "deny" for x in decisions)
