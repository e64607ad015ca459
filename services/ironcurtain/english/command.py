"""`ironcurtain annotate-tools`, `compile-policy`, `refresh-lists`: policy from plain English.

Each one asks the LLM only when its cache has no checked answer for the same inputs, refuses any
answer that fails a check (saying why, exit 1, the policy untouched), and writes policy.yaml only
after a human accepted the diff (`--accept`, or yes at the prompt).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import yaml

from ..keystore import KeyStore, KeyStoreError
from ..mcpproxy.config import ConfigError, load_backends
from ..policy import PolicyError, parse_policy
from ..state import state_dir
from . import annotate, compile, invariants, refresh
from .accept import offer
from .cache import Cache
from .oracle import (
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    AnthropicOracle,
    Oracle,
    OracleError,
    Rejected,
    connect,
)
from .splice import SpliceError, replace_list, replace_top


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy-dir", type=Path, default=Path("policy"))
    parser.add_argument("--accept", action="store_true", help="write the change without asking")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--llm-base-url", default=DEFAULT_BASE_URL, help=argparse.SUPPRESS)
    parser.add_argument("--llm-ca", type=Path, default=None, help=argparse.SUPPRESS)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("annotate-tools", help="classify every MCP tool argument (LLM)")
    _common(p)
    p.add_argument("--workspace", type=Path, default=Path.cwd(), help="for ${workspace}")
    p.add_argument("--timeout", type=float, default=30.0, help="per server start-up, seconds")
    p.set_defaults(handler=_annotate)
    p = commands.add_parser("compile-policy", help="constitution.md -> policy rules (LLM)")
    _common(p)
    p.set_defaults(handler=_compile)
    p = commands.add_parser("refresh-lists", help="re-resolve named lists (LLM or MCP)")
    _common(p)
    p.add_argument("--list", dest="names", action="append", default=[], metavar="NAME")
    p.add_argument("--workspace", type=Path, default=Path.cwd(), help="for ${workspace}")
    p.set_defaults(handler=_refresh)


class _Lazy:
    """The oracle is built on the first cache miss: a fully cached run needs no key at all."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._oracle: Oracle | None = None

    def __call__(self) -> Oracle:
        if self._oracle is None:
            try:
                key = KeyStore(state_dir() / "keys").checked_path("anthropic")
            except KeyStoreError as exc:
                raise OracleError(str(exc)) from None
            self._oracle = connect(
                key, base_url=self._args.llm_base_url, ca_file=self._args.llm_ca,
                model=self._args.model,
            )  # fmt: skip
        return self._oracle

    def close(self) -> None:
        if isinstance(self._oracle, AnthropicOracle):
            self._oracle.close()


def _fail(command: str, message: str) -> int:
    print(f"{command}: refused: {message}", file=sys.stderr)
    print(f"{command}: the current policy was not changed", file=sys.stderr)
    return 1


def _variables(args: argparse.Namespace) -> dict[str, str]:
    return {**invariants.SAMPLE, "workspace": str(args.workspace.resolve()),
            "policy_dir": str(args.policy_dir.resolve())}  # fmt: skip


def _checked_whole(text: str, file: str) -> None:
    """The proposed file as the engine will load it, and the invariants on it."""
    try:
        policy = parse_policy(text, file, invariants.SAMPLE)
    except PolicyError as exc:
        raise Rejected(f"the engine's loader refuses the proposed policy: {exc}") from None
    raw = yaml.safe_load(text).get("lists") or {}
    problems = invariants.check(policy, raw)
    if problems:
        raise Rejected("the proposed policy is refused:\n  - " + "\n  - ".join(problems))


def _run(command: str, body: Callable[[], int]) -> int:
    from .listing import ListingError  # the MCP client: imported only by commands that list

    try:
        return body()
    except (Rejected, OracleError, ListingError, ConfigError, SpliceError) as exc:
        return _fail(command, str(exc))
    except refresh.ListsError as exc:
        return _fail(command, str(exc))
    except OSError as exc:
        return _fail(command, f"cannot read {exc.filename}: {exc.strerror}")
    except yaml.YAMLError as exc:
        return _fail(command, f"the current policy is not valid YAML: {exc}")


# -- annotate-tools ---------------------------------------------------------------------------


def _annotate(args: argparse.Namespace) -> int:
    oracle = _Lazy(args)
    try:
        return _run("annotate-tools", lambda: annotate_tools(args, oracle))
    finally:
        oracle.close()


def annotate_tools(args: argparse.Namespace, oracle: Callable[[], Oracle]) -> int:
    path = args.policy_dir / "policy.yaml"
    current = path.read_text(encoding="utf-8")
    specs = load_backends(args.policy_dir / "servers.yaml", _variables(args))
    from .listing import list_all

    listings = anyio.run(list_all, specs, args.timeout)
    raw_servers = (yaml.safe_load(current) or {}).get("servers") or {}
    cache = Cache(state_dir() / "llm-cache")
    servers = {}
    for name, tools in listings.items():
        q = annotate.question(name, tools)
        digest = annotate.digest(tools)
        cached = cache.get("annotate", digest)
        if cached is not None:
            result = q.parse(cached)  # checked again: the cache is no authority
            print(f"annotate-tools: {name}: unchanged ({len(tools)} tools, cached)")
        else:
            answer = oracle().ask(q.system, q.prompt)
            result = q.parse(answer)
            cache.put("annotate", digest, json.dumps({"tools": result}))
            print(f"annotate-tools: {name}: {len(tools)} tools annotated")
        known = raw_servers.get(name) if isinstance(raw_servers, dict) else None
        root = known.get("root", "${workspace}") if isinstance(known, dict) else "${workspace}"
        servers[name] = (str(root), result)
    proposed = replace_top(current, "servers", annotate.render(servers))
    _checked_whole(proposed, str(path))
    _warn_loosened(current, proposed, str(path))
    return 0 if offer(path, current, proposed, accept=args.accept) else 3


# -- compile-policy ---------------------------------------------------------------------------


def _compile(args: argparse.Namespace) -> int:
    oracle = _Lazy(args)
    try:
        return _run("compile-policy", lambda: compile_policy(args, oracle))
    finally:
        oracle.close()


def compile_policy(args: argparse.Namespace, oracle: Callable[[], Oracle]) -> int:
    path = args.policy_dir / "policy.yaml"
    current = path.read_text(encoding="utf-8")
    constitution = (args.policy_dir / "constitution.md").read_text(encoding="utf-8")
    servers = (yaml.safe_load(current) or {}).get("servers") or {}
    digest = compile.inputs_digest(constitution, json.dumps(servers, sort_keys=True), args.model)
    q = compile.question(constitution, current)
    cache = Cache(state_dir() / "llm-cache")
    proposal = None
    cached = cache.get("compile", digest)
    if cached is not None:
        try:
            proposal = q.parse(cached)
            print("compile-policy: constitution and annotations unchanged (cached answer)")
        except Rejected:
            proposal = None  # the rest of the policy moved on: ask again
    if proposal is None:
        answer = oracle().ask(q.system, q.prompt)
        proposal = q.parse(answer)
        cache.put("compile", digest, answer)
    print(
        f"compile-policy: {len(proposal.policy.rules)} rules; {proposal.checked} example calls "
        "decided as the answer expected; invariants held"
    )
    _warn_loosened(current, proposal.text, str(path))
    return 0 if offer(path, current, proposal.text, accept=args.accept) else 3


def _warn_loosened(current: str, proposed: str, file: str) -> None:
    try:
        old = parse_policy(current, file, invariants.SAMPLE)
    except PolicyError:
        return  # nothing to compare with
    new = parse_policy(proposed, file, invariants.SAMPLE)
    found = invariants.loosened(old, new)
    if found:
        print(f"WARNING: {len(found)} sample calls would be decided more permissively:")
        for line in found:
            print(f"  ! {line}")


# -- refresh-lists ----------------------------------------------------------------------------


def _refresh(args: argparse.Namespace) -> int:
    oracle = _Lazy(args)
    try:
        return _run("refresh-lists", lambda: refresh_lists(args, oracle))
    finally:
        oracle.close()


def refresh_lists(args: argparse.Namespace, oracle: Callable[[], Oracle]) -> int:
    path = args.policy_dir / "policy.yaml"
    current = path.read_text(encoding="utf-8")
    sources_file = args.policy_dir / "lists.yaml"
    try:
        sources_text = sources_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise refresh.ListsError(f"{sources_file}: no dynamic lists are configured") from None
    sources = refresh.parse_sources(sources_text, str(sources_file))
    names = args.names or list(sources)
    for name in names:
        if name not in sources:
            raise refresh.ListsError(f"{sources_file} does not say how to resolve {name!r}")
    proposed = current
    specs = None
    for name in names:
        source = sources[name]
        if source.llm is not None:
            q = refresh.question(source)
            entries = q.parse(oracle().ask(q.system, q.prompt))
        else:
            if specs is None:
                specs = {s.name: s for s in load_backends(
                    args.policy_dir / "servers.yaml", _variables(args))}  # fmt: skip
            spec = specs.get(source.server or "")
            if spec is None:
                raise refresh.ListsError(f"list {name!r}: no MCP server {source.server!r}")
            from .listing import call_tool

            text = anyio.run(call_tool, spec, source.tool or "", source.arguments)
            entries = refresh.parse_mcp(text, source)
        print(f"refresh-lists: {name}: {len(entries)} entries")
        proposed = replace_list(proposed, name, entries)
    _checked_whole(proposed, str(path))
    _warn_loosened(current, proposed, str(path))
    return 0 if offer(path, current, proposed, accept=args.accept) else 3
