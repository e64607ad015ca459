"""compile-policy's checks as a table: hostile and malformed answers, each refused with a reason.

Pure: the answer text goes through the same parse/build the command uses, against the shipped
policy; no server, no network.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironcurtain.english import compile, invariants
from ironcurtain.english.oracle import Rejected
from ironcurtain.policy import Effect, parse_policy

REPO = Path(__file__).resolve().parents[3]
CURRENT = (REPO / "policy" / "policy.yaml").read_text()
SHIPPED = yaml.safe_load(CURRENT)

EXAMPLES = [
    {"call": "filesystem__read_text_file", "arguments": {"path": "${workspace}/a.py"},
     "expect": "allow"},
    {"call": "filesystem__write_file", "arguments": {"path": "${workspace}/b.py", "content": "x"},
     "expect": "allow"},
    {"call": "filesystem__move_file", "arguments": {"source": "${workspace}/a",
     "destination": "${workspace}/b"}, "expect": "escalate"},
    {"call": "filesystem__read_text_file", "arguments": {"path": "/etc/passwd"}, "expect": "deny"},
    {"call": "fetch__fetch", "arguments": {"url": "https://docs.python.org/3/"}, "expect": "allow"},
    {"call": "fetch__fetch", "arguments": {"url": "https://evil.example/"}, "expect": "escalate"},
]  # fmt: skip


def honest() -> dict[str, Any]:
    return {
        "lists": copy.deepcopy(SHIPPED["lists"]),
        "rules": copy.deepcopy(SHIPPED["rules"]),
        "examples": copy.deepcopy(EXAMPLES),
    }


def text(doc: object) -> str:
    return "Proposed rules:\n```yaml\n" + yaml.safe_dump(doc, sort_keys=False) + "```\n"


def attempt(doc: object) -> compile.Proposal:
    return compile.build(compile.parse(doc if isinstance(doc, str) else text(doc)), CURRENT)


def test_the_shipped_rules_as_an_answer_are_accepted_and_mean_the_same() -> None:
    proposal = attempt(honest())
    old = parse_policy(CURRENT, "p", invariants.SAMPLE)
    assert proposal.policy.rules == old.rules
    assert proposal.policy.servers == old.servers
    assert proposal.policy.protected == old.protected
    assert proposal.checked == len(EXAMPLES)
    assert invariants.loosened(old, proposal.policy) == []


def test_the_shipped_policy_passes_every_invariant() -> None:
    policy = parse_policy(CURRENT, "p", invariants.SAMPLE)
    assert invariants.check(policy, SHIPPED["lists"]) == []


def _with(change: Any) -> dict[str, Any]:
    doc = honest()
    change(doc)
    return doc


CATCH_ALL = {"name": "everything", "effect": "allow", "reason": "trust me"}
HOSTILE: list[tuple[str, Any, str]] = [
    ("a catch-all allow", _with(lambda d: d["rules"].insert(0, CATCH_ALL)),
     "allows filesystem__read_file without limiting its paths"),
    ("allow outside the workspace",
     _with(lambda d: d["rules"].insert(0, {**CATCH_ALL, "when": {"paths_outside": "workspace"}})),
     "without limiting its paths"),
    ("fetch anything", _with(lambda d: d["rules"].insert(0, {**CATCH_ALL, "server": "fetch"})),
     "allows fetch__fetch without limiting its URLs"),
    ("the workspace list widened to /", _with(lambda d: d["lists"].update(workspace=["/"])),
     "'/' is outside the workspace"),
    ("the policy directory added to the workspace list",
     _with(lambda d: d["lists"]["workspace"].append("${policy_dir}")),
     "'${policy_dir}' is outside the workspace"),
    ("a workspace path climbing out",
     _with(lambda d: d["lists"].update(workspace=["${workspace}/../.."])), "no '..'"),
    ("a wildcard domain", _with(lambda d: d["lists"]["trusted-docs"].append("*")),
     "a wildcard may only lead"),
    ("an IP in a domain list",
     _with(lambda d: d["lists"]["trusted-docs"].append("169.254.169.254")), "is an IP address"),
    ("a bare top-level domain", _with(lambda d: d["lists"]["trusted-docs"].append("com")),
     "every host under a top-level domain"),
    ("a domain list used as paths", _with(lambda d: d["rules"][1]["when"].update(
        paths_within="trusted-docs")), "is used as"),
    ("protected paths emptied", _with(lambda d: d.update(protected={"paths": [], "names": []})),
     "tries to set protected"),
    ("annotations rewritten", _with(lambda d: d.update(servers={})), "tries to set servers"),
    ("the breaker switched off", _with(lambda d: d.update(breaker={"limit": 10**9})),
     "tries to set breaker"),
    ("a role that does not exist", _with(lambda d: d["rules"][1]["when"].update(roles=["root"])),
     "unknown role 'root'"),
    ("a list that does not exist", _with(lambda d: d["rules"][1]["when"].update(
        paths_within="everywhere")), "unknown list 'everywhere'"),
    ("a made-up rule key", _with(lambda d: d["rules"][0].update(priority=0)),
     "unknown key 'priority'"),
    ("an example the rules contradict", _with(lambda d: d["examples"].append(
        {"call": "filesystem__read_text_file", "arguments": {"path": "/etc/shadow"},
         "expect": "allow"})), "expected allow, the engine says deny"),
    ("an example for a tool that does not exist", _with(lambda d: d["examples"].append(
        {"call": "shell__run", "arguments": {"cmd": "id"}, "expect": "deny"})),
     "not a tool the policy declares"),
    ("no examples", _with(lambda d: d.update(examples=[])), "examples must be a list"),
    ("no rules", _with(lambda d: d.update(rules=[])), "rules must be a list"),
    ("invalid YAML", "```yaml\nrules: [\n  - {name: x\n```", "not valid YAML"),
    ("two code blocks", "```yaml\nrules: []\n```\n```yaml\nlists: {}\n```", "2 code blocks"),
    ("prose instead of YAML", "I cannot help with that.", "must be a YAML mapping"),
    ("a billion laughs", "```yaml\nlists: {a: &a [x, x], b: &b [*a, *a]}\nrules: [*b]\n```",
     "anchors or aliases"),
    ("a python tag", "```yaml\nrules: !!python/object/apply:os.system [id]\n```", "not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "doc", "why"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_or_malformed_answer_is_refused_with_the_reason(
    what: str, doc: Any, why: str
) -> None:
    with pytest.raises(Rejected) as info:
        attempt(doc)
    assert why in str(info.value)


def test_dropping_the_escalation_for_moves_is_reported_as_loosening() -> None:
    doc = honest()
    doc["rules"] = [r for r in doc["rules"] if r["name"] != "workspace-delete-escalates"]
    doc["examples"] = [e for e in doc["examples"] if e["expect"] != "escalate"]
    doc["examples"].append(  # the model's own table agrees with its loosened rules
        {"call": "fetch__fetch", "arguments": {"url": "https://pypi.org/"}, "expect": "allow"}
    )
    proposal = attempt(doc)
    found = invariants.loosened(parse_policy(CURRENT, "p", invariants.SAMPLE), proposal.policy)
    assert any("filesystem__move_file" in f and "escalate" in f and "-> allow" in f for f in found)


def test_the_examples_are_decided_by_the_engine_not_by_the_answer() -> None:
    doc = honest()
    doc["examples"][0]["expect"] = "deny"  # a read in the workspace is allowed by these rules
    with pytest.raises(Rejected, match="expected deny, the engine says allow"):
        attempt(doc)


def test_example_effects_cover_every_effect_of_the_shipped_rules() -> None:
    effects = {Effect(e["expect"]) for e in EXAMPLES}
    assert effects == set(Effect)
