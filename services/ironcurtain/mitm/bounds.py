"""What one request may spend, decided from its body before it is forwarded (pure; no I/O).

Each metered endpoint says, as provider data (`meter:` in providers.yaml), which body fields bound
its output (`max_tokens`, `max_output_tokens`, `generationConfig.maxOutputTokens`), whether the
bound is required or defaulted (a default is written into the body, so the vendor holds it), which
field multiplies it (`n`, `candidateCount`), which fields make a request unmeterable
(`background`: the vendor would run it after the answer), and whether an OpenAI chat stream must be
asked for its usage chunk (`stream_options.include_usage`). The input is estimated from the
body's size: `ceil(bytes / 4)`, about a token per four bytes of JSON text (inline base64 data is
over-estimated; the vendor's figure replaces the estimate when the answer is settled).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import Refusal

INPUT_BYTES_PER_TOKEN = 4
_MODEL_IN_PATH = re.compile(r"/models/([^/:]+)")


@dataclass(frozen=True, slots=True)
class Spec:
    """How one endpoint's spend is bounded (parsed from provider data)."""

    output: tuple[str, ...]  # dotted body fields bounding the output; the first is the default's
    default: int | None = None  # None: the bound is required (refused without it)
    choices: str | None = None  # a field multiplying the bound (answers per request)
    refuse: tuple[str, ...] = ()  # fields that, when true, make the request unmeterable
    stream_usage: bool = False  # OpenAI chat: ask a stream for its final usage chunk


@dataclass(frozen=True, slots=True)
class Bound:
    """One request's most output and estimated input, and what the proxy changed to hold it."""

    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None
    strip_usage_chunk: bool = False  # we asked for the usage chunk; the agent did not

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


FREE = Bound()  # an endpoint the vendor does not bill (count_tokens, model lists)


def parse_spec(raw: object) -> Spec | None:
    """`free` -> None; a mapping -> Spec. Raises ValueError naming the bad field."""
    if raw == "free":
        return None
    if not isinstance(raw, Mapping):
        raise ValueError("meter entry must be 'free' or a mapping")
    unknown = set(raw) - {"output", "default", "choices", "refuse", "stream_usage"}
    if unknown:
        raise ValueError(f"meter: unknown field(s) {', '.join(sorted(unknown))}")
    output = raw.get("output")
    if not isinstance(output, list) or not output or not all(isinstance(f, str) for f in output):
        raise ValueError("meter.output must be a non-empty list of body fields")
    default = raw.get("default")
    if default is not None and (not _count(default)):
        raise ValueError("meter.default must be a positive integer")
    refuse = raw.get("refuse") or []
    if not isinstance(refuse, list) or not all(isinstance(f, str) for f in refuse):
        raise ValueError("meter.refuse must be a list of body fields")
    choices = raw.get("choices")
    if choices is not None and not isinstance(choices, str):
        raise ValueError("meter.choices must be a body field")
    return Spec(
        output=tuple(output),
        default=default,
        choices=choices,
        refuse=tuple(refuse),
        stream_usage=bool(raw.get("stream_usage", False)),
    )


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _get(doc: Mapping[str, Any], field: str) -> Any:
    value: Any = doc
    for part in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _set(doc: dict[str, Any], field: str, value: int) -> None:
    *parents, last = field.split(".")
    holder = doc
    for part in parents:
        child = holder.setdefault(part, {})
        if not isinstance(child, dict):
            raise Refusal(400, "budget", f"'{part}' must be an object")
        holder = child
    holder[last] = value


@functools.lru_cache(maxsize=64)
def _watched(spec: Spec) -> tuple[frozenset[str], tuple[bytes, ...]]:
    """The body keys the bound depends on, and each as a quoted JSON name (for a quick scan)."""
    names = {f.split(".")[0] for f in (*spec.output, *spec.refuse)}
    names |= {f.split(".")[-1] for f in (*spec.output, *spec.refuse)}
    if spec.choices:
        names |= {spec.choices.split(".")[0], spec.choices.split(".")[-1]}
    if spec.stream_usage:
        names |= {"stream", "stream_options", "include_usage"}
    return frozenset(names), tuple(b'"%s"' % n.encode() for n in sorted(names))


def _load(body: bytes, watched: frozenset[str], needles: tuple[bytes, ...]) -> dict[str, Any]:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        doc = dict(items)
        if len(doc) != len(items):
            # A repeated bound: we would read one copy and a vendor might use the other.
            seen: set[str] = set()
            for key, _ in items:
                if key in seen and key in watched:
                    raise Refusal(400, "budget", f"'{key}' appears twice in the request body")
                seen.add(key)
        return doc

    # The C parser, unless a watched key's name occurs more than once in the raw bytes (in a
    # string, or repeated) or a key may be spelled with escapes ("max\u005ftokens"): then the
    # slower hook that sees every key.
    repeated = b"\\u" in body or any(body.count(needle) > 1 for needle in needles)
    try:
        doc = json.loads(body, object_pairs_hook=pairs) if repeated else json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise Refusal(
            400, "budget", "request body is not JSON; its spend cannot be bounded"
        ) from None
    if not isinstance(doc, dict):
        raise Refusal(400, "budget", "request body is not a JSON object")
    return doc


def prepare(
    spec: Spec | None, body: bytes, path: str, parsed: dict[str, Any] | None = None
) -> tuple[bytes, Bound]:
    """The body to forward (changed only if a default or stream option was added) and its Bound.

    Raises Refusal (400, rule `budget`) for a body whose spend cannot be bounded: not JSON, a
    bound that is missing (when required) or not a positive integer, a repeated bound, or a
    field such as `background: true` that makes the answer unmeterable.

    `parsed`: the document `body` is the canonical serialisation of, already read by the
    strict parser (shapes.admit_parsed: duplicate keys anywhere refused), so it is not parsed
    again; it is changed in place when a default or stream option is written.
    """
    if spec is None:
        return body, FREE
    doc = parsed if parsed is not None else _load(body, *_watched(spec))
    for field in spec.refuse:
        if _get(doc, field) not in (None, False):
            raise Refusal(
                400,
                "budget",
                f"'{field}' requests cannot be metered (the vendor answers them later); refused",
            )
    changed = False
    values = [(field, _get(doc, field)) for field in spec.output]
    for field, value in values:
        if value is not None and not _count(value):
            raise Refusal(400, "budget", f"'{field}' must be a positive integer")
    given = [value for _, value in values if value is not None]
    if given:
        output = max(given)
    elif spec.default is None:
        raise Refusal(
            400, "budget", f"'{spec.output[0]}' is required: it bounds what the request may spend"
        )
    else:
        output = spec.default
        _set(doc, spec.output[0], output)
        changed = True
    if spec.choices is not None:
        choices = _get(doc, spec.choices)
        if choices is not None:
            if not _count(choices):
                raise Refusal(400, "budget", f"'{spec.choices}' must be a positive integer")
            output *= choices
    strip = False
    if spec.stream_usage and doc.get("stream") is True:
        options = doc.get("stream_options")
        if options is None:
            options = doc["stream_options"] = {}
        if not isinstance(options, dict):
            raise Refusal(400, "budget", "'stream_options' must be an object")
        if options.get("include_usage") is not True:
            options["include_usage"] = True  # so the stream ends with its usage
            strip = changed = True
    if changed:
        body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    model = doc.get("model")
    if not isinstance(model, str):
        found = _MODEL_IN_PATH.search(path)
        model = found.group(1) if found else None
    estimate = math.ceil(len(body) / INPUT_BYTES_PER_TOKEN)
    return body, Bound(estimate, output, model, strip)
