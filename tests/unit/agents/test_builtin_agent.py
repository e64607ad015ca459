"""The builtin agent without Docker: the real policy proxy (a process, with the real backends),
the fake vendor over TLS with the real Anthropic SDK, the real sandbox. What the model is told
after each program is read back from the vendor's record. Also the door's wording of a denial
and of a refused escalation, from the real gate, as the stubs' exceptions read it."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from ironcurtain.agents import builtin_agent, builtin_mcp, builtin_sandbox, builtin_stubs
from ironcurtain.agents.builtin_budget import Budgets
from ironcurtain.agents.builtin_loop import Loop
from ironcurtain.agents.builtin_model import AnthropicModel, price
from ironcurtain.escalation.types import Verdict
from ironcurtain.fakellm import certs, play
from ironcurtain.fakellm.server import FakeVendor

from ..mcpproxy.conftest import filesystem_server, layout  # noqa: F401 (fixtures)
from ..mcpproxy.test_gate import FakeEscalator, move, with_gate
from ..mcpproxy.test_proxy import Proxy
from ..mitm.harness import LoopThread

pytestmark = pytest.mark.usefixtures("filesystem_server")


def test_a_denial_from_the_real_gate_reads_as_policy_denied(layout: dict[str, Path]) -> None:  # noqa: F811
    async def body(gate: Any) -> Any:
        return await gate.call("filesystem__read_text_file", {"path": "/etc/passwd"})

    result = with_gate(layout, FakeEscalator(Verdict.APPROVED), body)
    text = "".join(c.text for c in result.content)
    with pytest.raises(builtin_mcp.PolicyDenied) as caught:
        builtin_mcp.raise_for("filesystem__read_text_file", builtin_mcp.ToolResult(True, text))
    assert caught.value.rule == "outside-workspace"
    assert caught.value.reason
    assert caught.value.reason in text


def test_a_refused_escalation_from_the_real_gate_reads_as_not_approved(
    layout: dict[str, Path],  # noqa: F811
) -> None:
    name, arguments = move(layout)

    async def body(gate: Any) -> Any:
        return await gate.call(name, arguments)

    result = with_gate(layout, FakeEscalator(Verdict.DENIED), body)
    text = "".join(c.text for c in result.content)
    with pytest.raises(builtin_mcp.NotApproved) as caught:
        builtin_mcp.raise_for(name, builtin_mcp.ToolResult(True, text))
    assert (caught.value.verdict, caught.value.tool) == ("denied", name)
    assert caught.value.rule


def test_any_other_error_is_a_tool_error_and_success_is_the_text() -> None:
    with pytest.raises(builtin_mcp.ToolError) as caught:
        builtin_mcp.raise_for("t", builtin_mcp.ToolResult(True, "ENOENT: no such file"))
    assert type(caught.value) is builtin_mcp.ToolError
    assert builtin_mcp.raise_for("t", builtin_mcp.ToolResult(False, "fine")) == "fine"


def test_a_denial_lookalike_inside_a_longer_text_is_not_a_denial() -> None:
    # Only the gate's whole message is a denial: a file that *contains* those words is not.
    text = "note\nIronCurtain policy denied x (rule 'r'): y"
    with pytest.raises(builtin_mcp.ToolError) as caught:
        builtin_mcp.raise_for("t", builtin_mcp.ToolResult(True, text))
    assert type(caught.value) is builtin_mcp.ToolError


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, filesystem_server: str) -> Iterator[Proxy]:  # noqa: F811
    from ..mcpproxy.conftest import make_layout

    running = Proxy(make_layout(tmp_path_factory.mktemp("proxy"), filesystem_server))
    yield running
    running.stop()


def _code(code: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "execute_code", "input": {"code": code}}]}


@contextmanager
def playing(folder: Path, script: dict[str, Any]) -> Iterator[AnthropicModel]:
    """The fake vendor playing `script` over TLS, and our model wrapper on the real SDK."""
    files = certs.write(folder / "certs", ["localhost"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files.cert, files.key)
    (folder / play.SCRIPT_FILE).write_text(json.dumps(script))
    fake = FakeVendor(script=play.load(folder), record_to=folder / play.RECORD_FILE)
    loop = LoopThread()
    port = loop.run(fake.start(context, "127.0.0.1"))
    http = httpx2.Client(verify=ssl.create_default_context(cafile=str(files.ca)), trust_env=False)
    client = anthropic.Anthropic(
        api_key="sk-ant-fake", base_url=f"https://localhost:{port}", http_client=http, max_retries=0
    )
    try:
        yield AnthropicModel(client, "claude-sonnet-4-5")
    finally:
        http.close()
        loop.run(fake.close())
        loop.stop()


def test_the_agent_reads_allowed_gets_the_denial_back_and_answers(
    proxy: Proxy, tmp_path: Path
) -> None:
    hello = proxy.dirs["workspace"] / "hello.txt"
    script = {
        "turns": [
            _code(f"print(filesystem.read_text_file(path={str(hello)!r}))"),
            _code("filesystem.read_text_file(path='/etc/passwd')"),
            {"text": "done: hello read, passwd refused"},
        ]
    }
    with playing(tmp_path, script) as model:
        outcome = _run(model, proxy)
    assert (outcome.kind, outcome.text) == ("answer", "done: hello read, passwd refused")
    assert outcome.spent.steps == 3
    assert outcome.spent.tokens == 3 * (play.INPUT_TOKENS + play.OUTPUT_TOKENS)
    assert outcome.spent.cost_usd > 0  # priced from the MITM's table

    seen = [json.loads(x) for x in (tmp_path / play.RECORD_FILE).read_text().splitlines()]
    assert len(seen) == 3
    system = seen[0]["body"]["system"]
    assert "filesystem.read_text_file(*, path: str" in system
    assert "git.git_status(" in system
    results = {}
    for message in seen[2]["body"]["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_result":
                results[block["tool_use_id"]] = block
    allowed, denied = results[play.tool_use_id(0, 0)], results[play.tool_use_id(1, 0)]
    assert allowed["is_error"] is False
    assert "hello from the workspace" in allowed["content"]
    assert denied["is_error"] is True
    assert (
        "PolicyDenied: policy denied filesystem__read_text_file (rule 'outside-workspace')"
        in (denied["content"])
    )
    assert "root:" not in denied["content"]
    audit = [json.loads(x) for x in proxy.audit.read_text().splitlines()]
    assert ("/etc/passwd", "deny") in {
        (e["arguments"].get("path"), e["effect"]) for e in audit if e.get("event") == "decision"
    }


def _run(model: AnthropicModel, proxy: Proxy) -> Any:
    tools = builtin_mcp.McpClient(proxy.url).list_tools()
    stubs = builtin_stubs.stubs(tools)
    source = builtin_stubs.source(stubs)
    limits = builtin_sandbox.Limits()
    events: list[dict[str, Any]] = []
    loop = Loop(
        model,
        lambda code, end: builtin_sandbox.run(code, source, proxy.url, limits, deadline=end),
        builtin_agent.system_prompt(stubs, limits),
        Budgets(),
        price,
        time.monotonic,
        lambda **e: events.append(e),
    )
    return loop.run("read hello, then passwd")


HARD = """
import sys, threading
from ironcurtain.agents import builtin_agent
builtin_agent._hard_stop(0.3, builtin_agent.say)
threading.Event().wait()  # what it waits on never comes
"""


def test_the_hard_deadline_ends_the_agent_whatever_it_waits_on() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HARD], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == builtin_agent.EXIT_BUDGET
    event = json.loads(done.stdout)
    assert (event["step"], event["budget"]) == ("budget", "seconds")
    assert "hard deadline" in event["text"]
