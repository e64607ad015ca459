"""What the scripted agent runs inside its container (python3 -m ironcurtain.agents.scripted_agent).

Steps, one JSON line each: an LLM call to api.anthropic.com through HTTPS_PROXY with the session's
fake key; then MCP calls through the sidecar: read a workspace file (policy: allow), read a file
outside the workspace (deny), move a workspace file (escalate: waits for a human). A step that
fails is reported and the script goes on; it exits 1 if the LLM call or the MCP session failed.
With `--interactive` it is a tiny REPL instead (see `repl`).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

import anyio
from mcp import Client

SERVER = "filesystem"


def say(**event: Any) -> None:
    print(json.dumps(event, sort_keys=True), flush=True)


def llm_call(task: str) -> bool:
    """POST /v1/messages through HTTPS_PROXY (urllib tunnels with CONNECT), trusting our CA."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": task}],
    }
    request = urllib.request.Request(
        "https://api.anthropic.com/v1/messages",
        data=json.dumps(body).encode(),
        headers={
            "x-api-key": os.environ["IRONCURTAIN_ANTHROPIC_FAKE_KEY"],
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
        },
        method="POST",
    )
    tls = ssl.create_default_context(cafile=os.environ["IRONCURTAIN_CA_CERT"])
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"https": os.environ["HTTPS_PROXY"]}),
        urllib.request.HTTPSHandler(context=tls),
    )
    try:
        with opener.open(request, timeout=30) as answer:
            status, headers, raw = answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    except OSError as exc:
        say(step="llm", status=0, text=f"failed: {exc}")
        return False
    text = raw.decode("utf-8", "replace")[:200]
    try:
        content = json.loads(raw).get("content") or [{}]
        text = str(content[0].get("text", text))
    except (ValueError, AttributeError, IndexError, TypeError):
        pass
    say(
        step="llm",
        status=status,
        text=text,
        vendor_key_sha256=headers.get("x-fake-key-sha256", ""),
    )
    return status == 200


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


PROMPT = "scripted> "
HELP = "commands: size | call TOOL JSON | exit [CODE]"


def _size() -> str:
    columns, rows = os.get_terminal_size(sys.stdin.fileno())
    return f"{rows}x{columns}"


async def call_one(tool: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    async with Client(os.environ["IRONCURTAIN_MCP_URL"]) as client:
        result = await client.call_tool(tool, arguments)
    return bool(result.is_error), " ".join(getattr(c, "text", "") for c in result.content)


def repl() -> int:
    """`--interactive`: a tiny REPL on the session's terminal (for the interactive-mode tests).

    It reports its tty's size when asked and whenever the window changes (SIGWINCH), and makes
    one MCP call per `call` line (an escalated call waits here until a human decides).
    """
    if not sys.stdin.isatty():
        print("the scripted agent's interactive mode needs a terminal", file=sys.stderr)
        return 2
    signal.signal(signal.SIGWINCH, lambda s, f: print(f"\nwindow {_size()}", flush=True))
    print(f"scripted agent, interactive ({HELP})", flush=True)
    while True:
        print(PROMPT, end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return 0
        command, _, rest = line.strip().partition(" ")
        if command == "size":
            print(f"size {_size()}", flush=True)
        elif command == "call":
            tool, _, text = rest.strip().partition(" ")
            try:
                arguments = json.loads(text or "{}")
                is_error, shown = anyio.run(call_one, tool, arguments)
            except Exception as exc:  # the REPL's top level: report it, carry on
                print(f"result failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            print(f"result {'error' if is_error else 'ok'}: {shown}", flush=True)
        elif command == "exit":
            return int(rest or "0") if (rest or "0").isdigit() else 2
        elif command:
            print(HELP, flush=True)


def main(argv: list[str]) -> int:
    if argv == ["--interactive"]:
        return repl()
    task = " ".join(argv) or "say hello"
    if task.startswith("crash"):  # for tests: an agent that dies at once
        say(step="error", text="crashing on purpose")
        return 3
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
