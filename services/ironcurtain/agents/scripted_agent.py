"""What the scripted agent runs inside its container (python3 -m ironcurtain.agents.scripted_agent).

Steps, one JSON line each: an LLM call to api.anthropic.com through HTTPS_PROXY with the session's
fake key; then MCP calls through the sidecar: read a workspace file (policy: allow), read a file
outside the workspace (deny), move a workspace file (escalate: waits for a human). A step that
fails is reported and the script goes on; it exits 1 if the LLM call or the MCP session failed.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import httpx
from mcp import Client

SERVER = "filesystem"


def say(**event: Any) -> None:
    print(json.dumps(event, sort_keys=True), flush=True)


def llm_call(task: str) -> bool:
    proxy = os.environ["HTTPS_PROXY"]
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": task}],
    }
    headers = {
        "x-api-key": os.environ["IRONCURTAIN_ANTHROPIC_FAKE_KEY"],
        "anthropic-version": "2023-06-01",
    }
    with httpx.Client(proxy=proxy, verify=os.environ["IRONCURTAIN_CA_CERT"], timeout=30) as client:
        try:
            answer = client.post(
                "https://api.anthropic.com/v1/messages", json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            say(step="llm", status=0, text=f"failed: {exc}")
            return False
    text = ""
    if answer.headers.get("content-type", "").startswith("application/json"):
        content = answer.json().get("content") or [{}]
        text = str(content[0].get("text", "")) if isinstance(content, list) else ""
    say(
        step="llm",
        status=answer.status_code,
        text=text or answer.text[:200],
        vendor_key_sha256=answer.headers.get("x-fake-key-sha256", ""),
    )
    return answer.status_code == 200


CALLS = (
    ("read_text_file", {"path": "/workspace/hello.txt"}),
    ("read_text_file", {"path": "/etc/passwd"}),
    ("move_file", {"source": "/workspace/old.txt", "destination": "/workspace/new.txt"}),
)


async def tool_calls() -> bool:
    # The escalated call waits for a human; the proxy's own deadline bounds it.
    with anyio.fail_after(float(os.environ.get("IRONCURTAIN_SCRIPTED_TIMEOUT_S", "600"))):
        async with Client(os.environ["IRONCURTAIN_MCP_URL"]) as client:
            for tool, arguments in CALLS:
                result = await client.call_tool(f"{SERVER}__{tool}", arguments)
                text = " ".join(getattr(c, "text", "") for c in result.content)
                say(
                    step="tool", tool=f"{SERVER}__{tool}", is_error=bool(result.is_error), text=text
                )
    return True


def main(argv: list[str]) -> int:
    task = " ".join(argv) or "say hello"
    llm_ok = llm_call(task)
    try:
        mcp_ok = anyio.run(tool_calls)
    except Exception as exc:  # the script's top level: report it, exit non-zero
        say(step="error", text=f"MCP session failed: {type(exc).__name__}: {exc}")
        mcp_ok = False
    say(step="answer", text="done" if llm_ok and mcp_ok else "failed")
    return 0 if llm_ok and mcp_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
