"""The LLM behind a small typed interface: a question in, a validated answer out.

`Oracle.ask(system, prompt) -> str` is all the commands need; a `Question` (prompt + pure
parser) is asked through it and its answer parsed. The parsers never trust the text: anything
they cannot check raises `Rejected` with a message a human can act on. `AnthropicOracle` is the
real one: the vendor SDK, called host-side with the key from the key store (a file, never an env
var).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:  # the SDK costs ~1.5 s and ~90 MB to import: only commands that ask pay it
    import anthropic

T = TypeVar("T")

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_BASE_URL = "https://api.anthropic.com"


class OracleError(RuntimeError):
    """The LLM could not be asked (no key, vendor down, error status): nothing was decided."""


class Rejected(ValueError):
    """The LLM's answer was refused; the message says what was wrong with it."""


class Oracle(Protocol):
    def ask(self, system: str, prompt: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Question(Generic[T]):
    system: str
    prompt: str
    parse: Callable[[str], T]  # raises Rejected


_FENCE = re.compile(r"^```[A-Za-z]*[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def block(text: str) -> str:
    """The one fenced block of an answer (or the whole answer when it has none)."""
    found = _FENCE.findall(text)
    if len(found) > 1:
        raise Rejected(f"the answer has {len(found)} code blocks; exactly one was asked for")
    return found[0] if found else text


@dataclass(frozen=True, slots=True)
class AnthropicOracle:
    client: anthropic.Anthropic
    model: str = DEFAULT_MODEL
    max_tokens: int = 8192

    def ask(self, system: str, prompt: str) -> str:
        import anthropic

        try:
            message = self.client.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system,
                messages=[{"role": "user", "content": prompt}],
            )
        except anthropic.APIStatusError as exc:
            raise OracleError(f"the LLM vendor answered HTTP {exc.status_code}") from None
        except anthropic.APIConnectionError as exc:
            raise OracleError(f"the LLM vendor is unreachable (or not trusted): {exc}") from None
        if message.stop_reason == "max_tokens":
            raise OracleError("the LLM's answer was cut off (max_tokens); nothing was used")
        return "".join(b.text for b in message.content if b.type == "text")

    def close(self) -> None:
        self.client.close()


def read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise OracleError(f"cannot read the LLM key {path}: {exc.strerror}") from None
    if not key:
        raise OracleError(f"the LLM key file {path} is empty")
    return key


def connect(
    key_file: Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    ca_file: Path | None = None,
    model: str = DEFAULT_MODEL,
    timeout_s: float = 120.0,
) -> AnthropicOracle:
    """The real oracle. `ca_file` replaces the system trust store (a test vendor, a corporate
    proxy); the environment is not consulted for keys, proxies or base URLs."""
    import anthropic
    import httpx2

    verify: ssl.SSLContext | bool = True
    if ca_file is not None:
        verify = ssl.create_default_context(cafile=str(ca_file))
    http = httpx2.Client(verify=verify, trust_env=False, timeout=timeout_s)
    client = anthropic.Anthropic(
        api_key=read_key(key_file), base_url=base_url, http_client=http, max_retries=1
    )
    return AnthropicOracle(client, model)
