"""Dynamic lists: `policy/lists.yaml` says how each named list is re-resolved (pure parts).

    lists:
      trusted-docs:
        kind: domains            # domains | remotes | paths
        llm: "Documentation sites for the Python ecosystem"
      org-repos:
        kind: remotes
        mcp: {server: github, tool: list_repos, arguments: {org: acme}}

An LLM answers `{"entries": [...]}`; an MCP tool's text result is a JSON list or one entry per
line. Either way every entry is checked for its kind before the policy's list is replaced; the
rules are not touched, and the result is re-read by the engine's loader.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .entries import Kind, problems
from .oracle import Question, Rejected, block

SYSTEM = (
    "You resolve a named list for a security policy. Answer with one JSON code block "
    '{"entries": [...]} and nothing else. Prefer fewer, specific entries.'
)


class ListsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    kind: Kind
    llm: str | None = None  # what to ask for, in words
    server: str | None = None  # or: an MCP call
    tool: str | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)


def parse_sources(text: str, file: str) -> dict[str, Source]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ListsError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("lists"), dict):
        raise ListsError(f"{file}: expected a mapping with a `lists` mapping")
    sources = {}
    for name, body in doc["lists"].items():
        where = f"{file}: list {name!r}"
        if not isinstance(body, dict) or set(body) - {"kind", "llm", "mcp"}:
            raise ListsError(f"{where}: expected kind and one of llm or mcp")
        try:
            kind = Kind(body.get("kind"))
        except ValueError:
            raise ListsError(f"{where}: kind must be domains, remotes or paths") from None
        if ("llm" in body) == ("mcp" in body):
            raise ListsError(f"{where}: needs exactly one of llm or mcp")
        if "llm" in body:
            if not isinstance(body["llm"], str) or not body["llm"].strip():
                raise ListsError(f"{where}: llm must say in words what the list holds")
            sources[str(name)] = Source(str(name), kind, llm=body["llm"])
            continue
        mcp = body["mcp"]
        if (
            not isinstance(mcp, dict)
            or set(mcp) - {"server", "tool", "arguments"}
            or not isinstance(mcp.get("server"), str)
            or not isinstance(mcp.get("tool"), str)
            or not isinstance(mcp.get("arguments", {}), dict)
        ):
            raise ListsError(f"{where}: mcp needs server, tool and optional arguments")
        sources[str(name)] = Source(
            str(name),
            kind,
            server=mcp["server"],
            tool=mcp["tool"],
            arguments=mcp.get("arguments", {}),
        )
    return sources


def checked(source: Source, entries: object) -> list[str]:
    found = problems(source.kind, entries)
    if found:
        raise Rejected(f"list {source.name!r} refused: " + "; ".join(found))
    assert isinstance(entries, list)
    return list(entries)


def parse_llm(text: str, source: Source) -> list[str]:
    try:
        doc = json.loads(block(text))
    except json.JSONDecodeError as exc:
        raise Rejected(f"list {source.name!r}: the answer is not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or set(doc) != {"entries"}:
        raise Rejected(f'list {source.name!r}: the answer must be {{"entries": [...]}} only')
    return checked(source, doc["entries"])


def parse_mcp(text: str, source: Source) -> list[str]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = [line.strip() for line in text.splitlines() if line.strip()]
    return checked(source, doc)


def question(source: Source) -> Question[list[str]]:
    assert source.llm is not None
    prompt = (
        f"List {source.name!r} holds {source.kind.value}: {source.llm}\n"
        "Domains: host names only (a name also covers its sub-domains), no IP addresses, no "
        "wildcards, no bare top-level domains. Remotes: git remote URLs. Paths: ${workspace} "
        "or ${workspace}/SUB.\n"
        'Answer: ```json\n{"entries": ["...", "..."]}\n```'
    )
    return Question(SYSTEM, prompt, lambda text: parse_llm(text, source))
