"""Replace one section of policy.yaml as text, keeping every other line (and comment) as it is.

A top-level section runs from its `key:` line to the comments and blank lines that introduce the
next top-level key. The result is always re-read by the engine's loader before anyone sees it.
"""

from __future__ import annotations

import json
import re

_TOP = re.compile(r"^[A-Za-z_][\w-]*:")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _astral(match: re.Match[str]) -> str:
    # JSON writes U+10000.. as a surrogate pair; YAML wants one \U escape.
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08x}"


_RESERVED = {"null", "true", "false", "yes", "no", "on", "off", "y", "n", "nan", "inf"}


class SpliceError(ValueError):
    pass


def scalar(text: str) -> str:
    """A YAML scalar for a name or value from outside (JSON strings are YAML strings)."""
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return _PAIR.sub(_astral, json.dumps(text))


def _section(lines: list[str], start: int, is_end: re.Pattern[str]) -> int:
    end = start + 1
    while end < len(lines) and not is_end.match(lines[end]):
        end += 1
    if end < len(lines):  # leave the next section's introducing comments with it
        while end - 1 > start and (not lines[end - 1].strip() or lines[end - 1].lstrip()[0] == "#"):
            end -= 1
    return end


def replace_top(text: str, key: str, new_block: str) -> str:
    """Replace the top-level `key:` section with new_block (which starts with `key:`)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(f"{key}:")]
    if len(starts) != 1:
        raise SpliceError(f"expected one top-level {key!r} section, found {len(starts)}")
    start = starts[0]
    end = _section(lines, start, _TOP)
    block = new_block if new_block.endswith("\n") else new_block + "\n"
    tail = lines[end:]
    if tail and tail[0].strip():
        block += "\n"
    return "".join([*lines[:start], block, *tail])


def replace_list(text: str, name: str, entries: list[str]) -> str:
    """Replace the entries of one list under the top-level `lists:` section."""
    lines = text.splitlines(keepends=True)
    tops = [i for i, line in enumerate(lines) if line.startswith("lists:")]
    if len(tops) != 1:
        raise SpliceError(f"expected one top-level 'lists' section, found {len(tops)}")
    top_end = _section(lines, tops[0], _TOP)
    head = re.compile(rf"^  ({re.escape(name)}|{re.escape(json.dumps(name))}):")
    found = [i for i in range(tops[0] + 1, top_end) if head.match(lines[i])]
    if len(found) != 1:
        raise SpliceError(f"the policy has no list {name!r} to refresh")
    start = found[0]
    sibling = re.compile(r"^ {0,2}\S")
    end = min(_section(lines, start, sibling), top_end)
    if entries:
        new = [f"  {scalar(name)}:\n", *(f"    - {scalar(e)}\n" for e in entries)]
    else:
        new = [f"  {scalar(name)}: []\n"]
    return "".join([*lines[:start], *new, *lines[end:]])
