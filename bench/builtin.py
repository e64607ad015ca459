"""The builtin agent's per-step overhead (issue 20), without Docker.

The real loop, the real Anthropic SDK against the fake vendor over TLS (in this process), and
the real sandbox: the model asks for STEPS trivial programs (`pass`), then answers. Per step:
- step_gap: from the model's answer arriving to the next request leaving;
- program: the execute_code call itself (a fresh interpreter: start, limits, the stubs of
  TOOLS tools defined, exit), the tool's own work;
- step_overhead: step_gap minus program, the loop's own cost (target p50 <= 100 ms).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

STEPS = 20
TOOLS = 40


class _Timed:
    """The model, with the time each request left and each answer arrived."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.sent: list[float] = []
        self.answered: list[float] = []

    def ask(
        self,
        system: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        timeout_s: float | None,
    ) -> Any:
        self.sent.append(time.perf_counter())
        reply = self.model.ask(system, messages, tools, timeout_s)
        self.answered.append(time.perf_counter())
        return reply


def _ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def step_overhead() -> dict[str, float | int]:
    import anthropic
    import httpx2

    from ironcurtain.agents import builtin_agent, builtin_sandbox, builtin_stubs
    from ironcurtain.agents.builtin_budget import Budgets
    from ironcurtain.agents.builtin_loop import Loop
    from ironcurtain.agents.builtin_model import AnthropicModel, price
    from ironcurtain.fakellm import certs, play
    from ironcurtain.fakellm.server import FakeVendor

    code = {"tool_calls": [{"name": "execute_code", "input": {"code": "pass"}}]}
    script = {"turns": [code] * STEPS + [{"text": "done"}]}
    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    tools = [{"name": f"server{n % 4}__tool_{n}", "inputSchema": schema} for n in range(TOOLS)]
    stubs = builtin_stubs.stubs(tools)
    source = builtin_stubs.source(stubs)
    limits = builtin_sandbox.Limits()
    with tempfile.TemporaryDirectory(prefix="ironcurtain-bench-builtin-") as tmp:
        folder = Path(tmp)
        files = certs.write(folder / "certs", ["localhost"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(files.cert, files.key)
        (folder / play.SCRIPT_FILE).write_text(json.dumps(script))
        fake = FakeVendor(script=play.load(folder), record_to=None)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        port = asyncio.run_coroutine_threadsafe(fake.start(context), loop).result(15)
        http = httpx2.Client(verify=ssl.create_default_context(cafile=str(files.ca)))
        client = anthropic.Anthropic(
            api_key="sk-ant-bench", base_url=f"https://localhost:{port}", http_client=http
        )
        model = _Timed(AnthropicModel(client, "claude-sonnet-4-5"))
        programs: list[float] = []

        def execute(program: str, deadline: float | None) -> builtin_sandbox.RunResult:
            began = time.perf_counter()
            result = builtin_sandbox.run(program, source, "http://127.0.0.1:9/mcp", limits)
            programs.append(time.perf_counter() - began)
            return result

        try:
            outcome = Loop(
                model, execute, builtin_agent.system_prompt(stubs, limits), Budgets(), price,
                time.monotonic,
            ).run("bench")  # fmt: skip
        finally:
            http.close()
            asyncio.run_coroutine_threadsafe(fake.close(), loop).result(15)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
    assert outcome.kind == "answer", outcome
    gaps = [model.sent[i + 1] - model.answered[i] for i in range(STEPS)]
    overheads = [gap - program for gap, program in zip(gaps, programs, strict=True)]
    return {
        "builtin_steps": STEPS,
        "builtin_stub_tools": TOOLS,
        "builtin_step_gap_p50_ms": _ms(gaps),
        "builtin_program_p50_ms": _ms(programs),
        "builtin_step_overhead_p50_ms": _ms(overheads),
        "builtin_step_overhead_max_ms": round(max(overheads) * 1000, 1),
        "target_builtin_step_overhead_p50_ms": 100,
    }


def run() -> dict[str, float | int | str]:
    return {**step_overhead()}
