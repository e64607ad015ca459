"""Constitution + annotations -> proposed policy.yaml, or a refusal that says why (pure).

The LLM proposes only `lists`, `rules` and `examples`. Everything else -- version, protected
paths, breaker, the servers' tool annotations -- is kept from the current policy, and an answer
that tries to set any of it is refused. The proposed file is spliced from the current one, read
by the engine's own loader, checked by `invariants`, and run against the answer's own table of
example calls: every example must be decided by the engine as the answer claims.
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ..policy import Call, Effect, Engine, LexicalResolver, PolicyError, parse_policy
from ..policy.model import Policy
from . import invariants
from .oracle import Question, Rejected, block
from .splice import replace_top, scalar

ALLOWED_KEYS = {"lists", "rules", "examples"}
MAX_RULES = 200
MAX_EXAMPLES = 500
PROMPT_VERSION = "compile-1"

SYSTEM = (
    "You turn a team's plain-English security constitution into rules for IronCurtain's MCP "
    "policy engine. The engine denies by default; the first matching rule decides. Answer with "
    "one YAML code block and nothing else."
)

ENGINE_GUIDE = """\
Rules: a list of mappings, first match decides, no match denies.
  - name: kebab-case, unique
    effect: allow | deny | escalate   (escalate asks a human)
    reason: one sentence the agent and the human will read
    server: NAME or [NAMES]   (optional; default any server)
    tools: [TOOL, ...]        (optional; tools of those servers)
    when:                     (optional; every key given must hold)
      roles: [ROLE, ...]      the call has an argument of one of these roles
      paths_within: LIST      every path argument lies under a path of LIST
      paths_outside: LIST     some path argument lies outside every path of LIST
      domains_in: LIST        every url argument's host is in LIST (or a sub-domain)
      domains_not_in: LIST    some url argument's host is not in LIST
      remotes_in: LIST        every git-remote argument is in LIST
Roles: read-path, write-path, delete-path, url, git-remote, branch, none.
Lists: a mapping NAME -> [entries]. Path lists hold ${workspace} or ${workspace}/SUB only;
domain lists hold host names (no IPs, no bare top-level domains); remote lists hold git remotes.
An allow rule must limit every path (paths_within), URL (domains_in) and remote (remotes_in)
of the tools it matches. Protected paths and the tool annotations are fixed; do not restate them.
Examples: calls the constitution implies, each with the effect you expect from your rules:
  - call: SERVER__TOOL
    arguments: {ARG: VALUE}   (paths may use ${workspace})
    expect: allow | deny | escalate
"""


@dataclass(frozen=True, slots=True)
class Example:
    call: str
    arguments: Mapping[str, Any]
    expect: Effect


@dataclass(frozen=True, slots=True)
class Answer:
    lists: Mapping[str, list[str]]
    rules: list[Any]
    examples: tuple[Example, ...]


@dataclass(frozen=True, slots=True)
class Proposal:
    text: str  # the complete proposed policy.yaml
    policy: Policy
    checked: int  # examples the engine decided as claimed


def inputs_digest(constitution: str, current: str, model: str) -> str:
    doc = [PROMPT_VERSION, model, constitution, current]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def prompt(constitution: str, current: str) -> str:
    doc = yaml.safe_load(current)
    servers = doc.get("servers", {}) if isinstance(doc, dict) else {}
    lists = doc.get("lists", {}) if isinstance(doc, dict) else {}
    return (
        f"{ENGINE_GUIDE}\n"
        f"The tools and the role of each argument (fixed):\n"
        f"```yaml\n{yaml.safe_dump({'servers': servers}, sort_keys=False)}```\n"
        f"The lists as they are now (you may keep, change or add lists):\n"
        f"```yaml\n{yaml.safe_dump({'lists': lists}, sort_keys=False)}```\n"
        f"The constitution:\n<<<CONSTITUTION\n{constitution}\nCONSTITUTION>>>\n\n"
        "Answer with one ```yaml block holding exactly the keys lists, rules and examples."
    )


def _example(raw: object, index: int) -> Example:
    where = f"example {index + 1}"
    if not isinstance(raw, dict) or set(raw) - {"call", "arguments", "expect"}:
        raise Rejected(f"{where}: must be a mapping of call, arguments and expect")
    call, arguments, expect = raw.get("call"), raw.get("arguments", {}), raw.get("expect")
    if not isinstance(call, str) or "__" not in call:
        raise Rejected(f"{where}: call must be SERVER__TOOL, not {call!r}")
    if not isinstance(arguments, dict):
        raise Rejected(f"{where}: arguments must be a mapping")
    try:
        effect = Effect(expect)
    except ValueError:
        raise Rejected(f"{where}: expect must be allow, deny or escalate, not {expect!r}") from None
    return Example(call, arguments, effect)


def parse(text: str) -> Answer:
    body = block(text)
    try:
        # Aliases could multiply a small answer into a huge one (a "billion laughs"): refused.
        if any(isinstance(t, yaml.AliasToken | yaml.AnchorToken) for t in yaml.scan(body)):
            raise Rejected("the answer uses YAML anchors or aliases; write every value out")
        doc = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        raise Rejected(f"the answer is not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise Rejected("the answer must be a YAML mapping of lists, rules and examples")
    extra = sorted(str(k) for k in set(doc) - ALLOWED_KEYS)
    if extra:
        raise Rejected(
            f"the answer tries to set {', '.join(extra)}; compile-policy only takes lists, "
            "rules and examples (protected paths, breaker and annotations are not the LLM's)"
        )
    lists, rules, examples = doc.get("lists", {}), doc.get("rules"), doc.get("examples")
    if not isinstance(lists, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(e, str) for e in v)
        for k, v in lists.items()
    ):
        raise Rejected("lists must be a mapping of names to lists of strings")
    if not isinstance(rules, list) or not rules or len(rules) > MAX_RULES:
        raise Rejected(f"rules must be a list of 1 to {MAX_RULES} rules")
    if not isinstance(examples, list) or not examples or len(examples) > MAX_EXAMPLES:
        raise Rejected(f"examples must be a list of 1 to {MAX_EXAMPLES} example calls")
    return Answer(lists, rules, tuple(_example(e, i) for i, e in enumerate(examples)))


_VAR_PATH = re.compile(r"^\$\{[a-z_]+\}(/[A-Za-z0-9._/-]*)?$")


def render_lists(lists: Mapping[str, list[str]]) -> str:
    out = ["lists:\n"]
    for name, entries in lists.items():
        if not entries:
            out.append(f"  {scalar(name)}: []\n")
            continue
        out.append(f"  {scalar(name)}:\n")
        out += [f"    - {e if _VAR_PATH.match(e) else scalar(e)}\n" for e in entries]
    return "".join(out)


def render_rules(rules: list[Any]) -> str:
    parts = [
        textwrap.indent(
            yaml.safe_dump([rule], sort_keys=False, default_flow_style=None, width=100), "  "
        )
        for rule in rules
    ]
    return "rules:\n" + "\n".join(parts)


def _fill(value: Any, workspace: str) -> Any:
    if isinstance(value, str):
        return value.replace("${workspace}", workspace)
    if isinstance(value, list):
        return [_fill(v, workspace) for v in value]
    return value


def example_failures(policy: Policy, examples: tuple[Example, ...]) -> list[str]:
    engine = Engine(policy, LexicalResolver(), lambda: 0.0)
    workspace = invariants.SAMPLE["workspace"]
    found = []
    for i, example in enumerate(examples):
        server, _, tool = example.call.partition("__")
        declared = policy.servers.get(server)
        if declared is None or tool not in declared.tools:
            found.append(f"example {i + 1}: {example.call} is not a tool the policy declares")
            continue
        arguments = {k: _fill(v, workspace) for k, v in example.arguments.items()}
        decision = engine.decide(Call(server, tool, arguments))
        if decision.effect is not example.expect:
            found.append(
                f"example {i + 1}: {example.call} {json.dumps(example.arguments)}: expected "
                f"{example.expect.value}, the engine says {decision.effect.value} "
                f"(rule {decision.rule})"
            )
    return found


def build(answer: Answer, current: str, file: str = "policy.yaml") -> Proposal:
    """Splice the answer into the current policy; load, check and try it. Raises Rejected."""
    try:
        text = replace_top(current, "lists", render_lists(answer.lists))
        text = replace_top(text, "rules", render_rules(answer.rules))
    except ValueError as exc:
        raise Rejected(f"cannot place the answer in the current policy: {exc}") from None
    try:
        policy = parse_policy(text, file, invariants.SAMPLE)
    except PolicyError as exc:
        raise Rejected(f"the engine's loader refuses the proposed policy: {exc}") from None
    problems = invariants.check(policy, answer.lists) + example_failures(policy, answer.examples)
    if problems:
        raise Rejected("the proposed policy is refused:\n  - " + "\n  - ".join(problems))
    return Proposal(text, policy, len(answer.examples))


def question(constitution: str, current: str) -> Question[Proposal]:
    return Question(SYSTEM, prompt(constitution, current), lambda t: build(parse(t), current))
