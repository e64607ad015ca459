"""Resources and prompts through the gate, in front of the reference backend (fakemcp, a real
stdio child): listed with names prefixed, each read and get decided and audited before it is
forwarded; refusals never reach the backend. Each attack has a control that succeeds."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from ironcurtain.mcpproxy.gate import POLICY_DENIED, RESOURCE_NOT_FOUND, Gate
from ironcurtain.mcpproxy.jsonrpc import INVALID_PARAMS, RpcError
from ironcurtain.mcpproxy.service import ProxySettings, running_gate
from ironcurtain.mcpproxy.streams import Router

POLICY = """\
version: 1
protected: {paths: ["${state_dir}"], names: [".env"]}
lists: {workspace: ["${workspace}"]}
servers:
  ref:
    root: ${workspace}
    tools:
      test_simple_text: {}
rules:
  - name: workspace-read
    effect: allow
    reason: the workspace is readable
    when: {roles: [read-path], paths_within: workspace}
  - name: ref-own-resources
    effect: allow
    reason: the reference server's own test:// resources and prompts
    server: ref
    tools: [resources/read, prompts/get]
"""


def run(
    tmp_path: Path, body: Callable[[Gate, Path], Awaitable[Any]], *, policy: str = POLICY
) -> tuple[Any, list[dict[str, Any]]]:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "ok.txt").write_text("fine")
    (ws / ".env").write_text("SECRET=1")
    (tmp_path / "outside.txt").write_text("secret")
    if not (ws / "link.txt").exists():
        os.symlink(tmp_path / "outside.txt", ws / "link.txt")
    folder = tmp_path / "policy"
    folder.mkdir(exist_ok=True)
    (folder / "policy.yaml").write_text(policy)
    command = {"command": sys.executable, "args": ["-m", "ironcurtain.fakemcp", "--files", str(ws)]}
    (folder / "servers.yaml").write_text(yaml.safe_dump({"mcpServers": {"ref": command}}))
    audit = tmp_path / "audit" / "a.jsonl"
    settings = ProxySettings(
        policy_dir=folder, workspace=ws, audit_file=audit, state_dir=tmp_path / "state"
    )

    async def go() -> Any:
        with anyio.fail_after(60):
            async with running_gate(settings) as gate:
                return await body(gate, ws)

    result = anyio.run(go)
    lines = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    return result, lines


async def refused(call: Awaitable[Any]) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await call
    return caught.value


def test_lists_are_prefixed_and_reads_of_the_servers_resources_are_allowed(
    tmp_path: Path,
) -> None:
    async def body(gate: Gate, ws: Path) -> Any:
        resources = await gate.list_resources()
        templates = await gate.list_resource_templates()
        prompts = await gate.list_prompts()
        text = await gate.read_resource("test://static-text")
        by_template = await gate.read_resource("test://template/123/data")
        prompt = await gate.get_prompt(
            "ref__test_prompt_with_arguments", {"arg1": "hello", "arg2": "world"}
        )
        return resources, templates, prompts, text, by_template, prompt

    (resources, templates, prompts, text, by_template, prompt), lines = run(tmp_path, body)
    names = {r["name"] for r in resources["resources"]}
    assert "ref__static-text" in names
    assert {r["uri"] for r in resources["resources"]} >= {"test://static-text"}  # URIs as-is
    assert "ref__template-data" in {t["name"] for t in templates["resourceTemplates"]}
    assert "ref__test_prompt_with_arguments" in {p["name"] for p in prompts["prompts"]}
    assert text["contents"][0]["text"] == "This is the content of the static text resource."
    assert "123" in by_template["contents"][0]["text"]
    assert "arg1='hello'" in json.dumps(prompt)
    decisions = [line for line in lines if line["event"] == "decision"]
    assert [(d["tool"], d["effect"], d["rule"]) for d in decisions] == [
        ("ref__resources/read", "allow", "ref-own-resources"),
        ("ref__resources/read", "allow", "ref-own-resources"),
        ("ref__prompts/get", "allow", "ref-own-resources"),
    ]
    assert decisions[0]["arguments"] == {"uri": "test://static-text"}
    outcomes = [line for line in lines if line["event"] == "outcome"]
    assert [o["ok"] for o in outcomes] == [True, True, True]
    # each decision is on disk before its outcome
    seqs = [line["call"] for line in lines if line["event"] in ("decision", "outcome")]
    assert seqs == [c for d in decisions for c in (d["call"], d["call"])]


def test_a_file_read_in_the_workspace_is_allowed_and_its_attacks_are_refused(
    tmp_path: Path,
) -> None:
    async def body(gate: Gate, ws: Path) -> Any:
        allowed = await gate.read_resource(f"file://{ws}/ok.txt")
        errors = {
            uri: await refused(gate.read_resource(uri))
            for uri in (
                f"file://{ws}/.env",  # listed by the backend's template; protected
                f"file://{ws}/%2Eenv",  # the same, escaped
                f"file://{ws}/link.txt",  # a symlink out of the workspace
                f"file://{ws}/%2e%2e",  # '..' escaped, one segment for the template
                f"file://{ws}/%252e%252e",  # double-escaped
                f"file://{ws}/a%2F..%2F..%2Foutside.txt",  # an escaped slash
                f"FILE://{ws}/.env",  # another case of the scheme: no template fits
                "file:///etc/passwd",  # no backend lists it
            )
        }
        return allowed, errors

    (allowed, errors), lines = run(tmp_path, body)
    assert allowed["contents"][0]["text"] == "fine"
    ws = tmp_path / "ws"
    codes = {
        uri.removeprefix(f"file://{ws}/"): (e.code, (e.data or {}).get("rule"))
        for uri, e in errors.items()
    }
    assert codes == {
        ".env": (POLICY_DENIED, "protected-path"),
        "%2Eenv": (POLICY_DENIED, "protected-path"),
        "link.txt": (POLICY_DENIED, "no-matching-rule"),
        "%2e%2e": (POLICY_DENIED, "bad-arguments"),
        "%252e%252e": (POLICY_DENIED, "bad-arguments"),
        "a%2F..%2F..%2Foutside.txt": (POLICY_DENIED, "bad-arguments"),
        f"FILE://{ws}/.env": (RESOURCE_NOT_FOUND, None),
        "file:///etc/passwd": (RESOURCE_NOT_FOUND, None),
    }
    # Only the allowed read was forwarded; every refusal left a deny line and no outcome.
    decisions = [line for line in lines if line["event"] == "decision"]
    assert [d["effect"] for d in decisions] == ["allow"] + ["deny"] * 8
    assert len([line for line in lines if line["event"] == "outcome"]) == 1


def test_prompt_arguments_are_checked_and_unknown_prompts_refused(tmp_path: Path) -> None:
    async def body(gate: Gate, ws: Path) -> Any:
        ok = await gate.get_prompt("ref__test_simple_prompt", {})
        return ok, [
            await refused(gate.get_prompt("ref__test_prompt_with_arguments", {"arg1": "x"})),
            await refused(
                gate.get_prompt(
                    "ref__test_prompt_with_arguments", {"arg1": "x", "arg2": "y", "arg3": "z"}
                )
            ),
            await refused(
                gate.get_prompt("ref__test_prompt_with_arguments", {"arg1": 1, "arg2": "y"})
            ),
            await refused(gate.get_prompt("ref__no_such_prompt", {})),
            await refused(gate.get_prompt("test_simple_prompt", {})),
            await refused(gate.get_prompt("other__test_simple_prompt", {})),
        ]

    (ok, errors), lines = run(tmp_path, body)
    assert ok["messages"][0]["content"]["text"] == "This is a simple prompt for testing."
    assert [(e.code, (e.data or {}).get("rule")) for e in errors] == [
        (POLICY_DENIED, "bad-arguments"),
        (POLICY_DENIED, "bad-arguments"),
        (POLICY_DENIED, "bad-arguments"),
        (INVALID_PARAMS, None),
        (INVALID_PARAMS, None),
        (INVALID_PARAMS, None),
    ]
    assert [line["effect"] for line in lines if line["event"] == "decision"] == ["allow"] + [
        "deny"
    ] * 6


def test_without_a_rule_nothing_of_the_server_is_read(tmp_path: Path) -> None:
    deny_all = POLICY.split("rules:")[0] + "rules: []\n"

    async def body(gate: Gate, ws: Path) -> Any:
        listed = await gate.list_resources()  # listing is no read: still offered
        return listed, [
            await refused(gate.read_resource("test://static-text")),
            await refused(gate.read_resource(f"file://{ws}/ok.txt")),
            await refused(gate.get_prompt("ref__test_simple_prompt", {})),
        ]

    (listed, errors), _ = run(tmp_path, body, policy=deny_all)
    assert listed["resources"]
    assert [(e.code, e.data["rule"]) for e in errors] == [(POLICY_DENIED, "no-matching-rule")] * 3


def test_a_backend_tool_named_like_a_pseudo_tool_is_unknown() -> None:
    from types import SimpleNamespace

    from ironcurtain.policy import Engine, LexicalResolver, parse_policy

    engine = Engine(
        parse_policy(POLICY, "p.yaml", {"workspace": "/ws", "state_dir": "/s"}),
        LexicalResolver(),
        lambda: 0.0,
    )
    tools = {name: {} for name in ("resources/read", "prompts/get", "resources/read:located")}
    fake = SimpleNamespace(
        name="ref", tools=tools, schema_problem=lambda tool, args: None, router=Router()
    )
    gate = Gate(engine, {"ref": fake}, audit=None, escalator=None)  # type: ignore[arg-type]
    for name in tools:
        assert gate._decide("ref", name, {"uri": "test://static-text"}).rule == "unknown-tool"
    assert engine.decide_read("ref", "test://static-text").effect.value == "allow"  # the control


def test_completions_are_decided_as_what_they_complete(tmp_path: Path) -> None:
    def prompt(name: str) -> dict[str, Any]:
        return {
            "ref": {"type": "ref/prompt", "name": name},
            "argument": {"name": "arg1", "value": "pa"},
        }

    def template(uri: str) -> dict[str, Any]:
        return {
            "ref": {"type": "ref/resource", "uri": uri},
            "argument": {"name": "id", "value": "1"},
        }

    async def body(gate: Gate, ws: Path) -> Any:
        allowed = [
            await gate.complete(prompt("ref__test_prompt_with_arguments")),
            await gate.complete(template("test://template/{id}/data")),
            await gate.complete(template(f"file://{ws}/{{name}}")),
        ]
        return allowed, [
            await refused(gate.complete(prompt("ref__no_such_prompt"))),
            await refused(gate.complete(prompt("test_prompt_with_arguments"))),
            await refused(gate.complete(template("test://not/{listed}"))),
            await refused(gate.complete({"ref": {"type": "ref/other"}, "argument": {}})),
        ]

    (allowed, errors), lines = run(tmp_path, body)
    assert allowed[0]["completion"]["values"] == ["paris", "park", "party"]
    assert [e.code for e in errors] == [
        INVALID_PARAMS,
        INVALID_PARAMS,
        RESOURCE_NOT_FOUND,
        INVALID_PARAMS,
    ]
    decisions = [x for x in lines if x["event"] == "decision"]
    assert [(d["tool"], d["effect"]) for d in decisions[:3]] == [
        ("ref__completion/complete", "allow")
    ] * 3

    deny_all = POLICY.split("rules:")[0] + "rules: []\n"

    async def denied(gate: Gate, ws: Path) -> Any:
        return [
            await refused(gate.complete(prompt("ref__test_prompt_with_arguments"))),
            await refused(gate.complete(template("test://template/{id}/data"))),
            await refused(gate.complete(template(f"file://{ws}/{{name}}"))),
        ]

    (tmp_path / "deny").mkdir()
    errors, _ = run(tmp_path / "deny", denied, policy=deny_all)
    assert [(e.code, e.data["rule"]) for e in errors] == [(POLICY_DENIED, "no-matching-rule")] * 3
