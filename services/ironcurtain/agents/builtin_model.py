"""The builtin agent's model: Anthropic's official Python SDK, through the session's MITM.

Like every agent, it holds only the session's fake key and reaches the vendor through
`HTTPS_PROXY` (the MITM, which swaps in the real key), trusting the session CA only. Nothing is
taken from the environment implicitly (`trust_env=False`): the proxy and CA are passed in.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .builtin_loop import ModelError, Reply, ToolUse

if TYPE_CHECKING:
    import anthropic

    from ..mitm.providers import Provider

DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_BASE_URL = "https://api.anthropic.com"
MAX_TOKENS = 8192  # per answer; a non-streamed request this size stays well under the SDK's cap


class AnthropicModel:
    def __init__(self, client: anthropic.Anthropic, model: str, max_tokens: int = MAX_TOKENS):
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    def ask(
        self,
        system: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]],
        timeout_s: float | None,
    ) -> Reply:
        import anthropic

        extra: dict[str, Any] = {} if timeout_s is None else {"timeout": max(timeout_s, 0.1)}
        try:
            message = self.client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system,
                messages=list(messages),  # type: ignore[arg-type]
                tools=list(tools),  # type: ignore[arg-type]
                **extra,
            )
        except anthropic.APIStatusError as exc:
            raise ModelError(f"the vendor answered {exc.status_code}: {exc.message}") from None
        except anthropic.APIError as exc:
            raise ModelError(f"{type(exc).__name__}: {exc}") from None
        content = tuple(block.model_dump(exclude_none=True) for block in message.content)
        texts = [b.text for b in message.content if b.type == "text"]
        uses = tuple(
            ToolUse(b.id, b.name, b.input if isinstance(b.input, dict) else {})
            for b in message.content
            if b.type == "tool_use"
        )
        return Reply(
            text="\n".join(texts),
            tool_uses=uses,
            stop_reason=str(message.stop_reason or ""),
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            model=message.model,
            content=content,
        )


def connect(
    api_key: str,
    *,
    https_proxy: str | None,
    ca_file: str | None,
    model: str = DEFAULT_MODEL,
    base_url: str = DEFAULT_BASE_URL,
) -> AnthropicModel:
    import anthropic
    import httpx2

    verify: ssl.SSLContext | bool = True
    if ca_file:
        verify = ssl.create_default_context(cafile=ca_file)
    http = httpx2.Client(proxy=https_proxy, verify=verify, trust_env=False, timeout=600.0)
    client = anthropic.Anthropic(
        api_key=api_key, base_url=base_url, http_client=http, max_retries=2
    )
    return AnthropicModel(client, model)


@functools.cache
def _anthropic() -> Provider:
    from ..mitm import providers

    return providers.builtin()["anthropic"]


def price(model: str, input_tokens: int, output_tokens: int) -> float:
    """Estimated USD, from the MITM's own price table (the same figures the summary shows)."""
    rate = _anthropic().price(model)
    return (input_tokens * rate.input + output_tokens * rate.output) / 1_000_000
