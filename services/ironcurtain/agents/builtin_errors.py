"""The exceptions a builtin-agent program sees when a tool call fails. No imports: every
program's interpreter loads this module before anything else (builtin_child), so it costs
nothing; the MCP client that raises them (builtin_mcp) loads with the first tool call."""


class ToolError(Exception):
    """A tool call that failed; `text` is what the tool (or the proxy) said."""

    def __init__(self, tool: str, text: str) -> None:
        super().__init__(f"{tool} failed: {text}")
        self.tool = tool
        self.text = text


class PolicyDenied(ToolError):
    """The policy refused the call; `rule` and `reason` say why."""

    def __init__(self, tool: str, rule: str, reason: str, text: str) -> None:
        ToolError.__init__(self, tool, text)
        self.rule = rule
        self.reason = reason
        self.args = (f"policy denied {tool} (rule {rule!r}): {reason}",)


class NotApproved(ToolError):
    """The call needed a human's approval and did not get it (denied, expired, unavailable)."""

    def __init__(self, tool: str, rule: str, reason: str, verdict: str, text: str) -> None:
        ToolError.__init__(self, tool, text)
        self.rule = rule
        self.reason = reason
        self.verdict = verdict
        self.args = (f"{tool} was escalated (rule {rule!r}: {reason}) and not approved: {verdict}",)


class McpError(Exception):
    """The door itself failed (unreachable, a protocol error): not a tool's answer."""


# Shown as `PolicyDenied: ...` in a program's traceback, not with our module path.
for _cls in (ToolError, PolicyDenied, NotApproved, McpError):
    _cls.__module__ = "builtins"
