"""The three commands end to end: real MCP servers, the real SDK, the fake vendor over TLS.

Every hostile answer is refused with a message that says why, and policy.yaml stays
byte-identical; an honest answer is shown as a diff and written only when accepted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ironcurtain.cli import main
from ironcurtain.english.annotate import ToolInfo
from ironcurtain.policy import Effect, Engine, LexicalResolver, load_policy
from ironcurtain.policy.model import Call

from .conftest import KEY, Vendor

Listings = dict[str, tuple[ToolInfo, ...]]


def honest(policy_dir: Path, listings: Listings) -> list[str]:
    """What a careful model answers: the shipped roles where the policy has them."""
    declared = yaml.safe_load((policy_dir / "policy.yaml").read_text())["servers"]
    answers = []
    for server, tools in listings.items():
        known = (declared.get(server) or {}).get("tools") or {}
        doc: dict[str, dict[str, str]] = {}
        for tool in tools:
            roles = {}
            for arg, spec in tool.properties().items():
                role = (known.get(tool.name) or {}).get(arg)
                if role is None:
                    path_like = any(w in arg.lower() for w in ("path", "file", "dir"))
                    role = "read-path" if path_like else "none"
                    if role != "none" and spec.get("type") == "array":
                        role += "[]"
                roles[arg] = role
            doc[tool.name] = roles
        answers.append("Here you are:\n```json\n" + json.dumps({"tools": doc}) + "\n```")
    return answers


def run(command: str, policy_dir: Path, vendor: Vendor, *extra: str) -> int:
    return main(
        [
            command,
            "--policy-dir",
            str(policy_dir),
            "--llm-base-url",
            vendor.url,
            "--llm-ca",
            str(vendor.ca),
            *extra,
        ]
    )


def test_annotate_tools_writes_checked_roles_and_asks_nothing_the_second_time(
    policy_dir: Path,
    vendor: Vendor,
    state: Path,
    listings: Listings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    vendor.script(*honest(policy_dir, listings))
    workspace = str(policy_dir.parent / "workspace")
    assert run("annotate-tools", policy_dir, vendor, "--workspace", workspace, "--accept") == 0
    assert vendor.requests() == len(listings)
    # The real key from the key store, never the one in the environment.
    for seen in vendor.fake.seen:
        sent = seen.headers.get("x-api-key", []) + seen.headers.get("authorization", [])
        assert sent in ([KEY], [f"Bearer {KEY}"])
    out = capsys.readouterr().out
    assert "+      read_note: {note_path: read-path, max_lines: none}" in out
    policy = load_policy(policy_dir / "policy.yaml", {"workspace": "/ws", "policy_dir": "/p",
                         "audit_dir": "/a", "state_dir": "/s", "ca_dir": "/c",
                         "secrets_dir": "/r"})  # fmt: skip
    engine = Engine(policy, LexicalResolver(), lambda: 0.0)
    assert engine.decide(Call("notes", "read_note", {"note_path": "/ws/n.md"})).allowed
    assert engine.decide(Call("notes", "read_note", {"note_path": "/etc/x"})).effect is Effect.DENY

    before = vendor.requests()
    written = (policy_dir / "policy.yaml").read_bytes()
    assert run("annotate-tools", policy_dir, vendor, "--workspace", workspace, "--accept") == 0
    assert vendor.requests() == before  # unchanged servers: no request reached the vendor
    assert (policy_dir / "policy.yaml").read_bytes() == written
    assert "unchanged" in capsys.readouterr().out


def _hostile(answers: list[str], server: str, listings: Listings, change: dict) -> list[str]:
    index = list(listings).index(server)
    doc = json.loads(answers[index].split("```json\n")[1].split("\n```")[0])
    for tool, args in change.items():
        if args is None:
            doc["tools"].pop(tool)
        else:
            doc["tools"].setdefault(tool, {}).update(args)
    answers = list(answers)
    answers[index] = "```json\n" + json.dumps(doc) + "\n```"
    return answers[: index + 1]  # the command stops at the first refused server


HOSTILE_ANNOTATIONS = [
    ("notes", {"read_note": {"note_path": "none"}}, "cannot be 'none'"),
    ("git", {"git_status": {"repo_path": "superuser"}}, "not one of the engine's roles"),
    ("git", {"git_push_everything": {"remote": "git-remote"}}, "does not offer"),
    ("git", {"git_status": None}, "no annotation for tool 'git_status'"),
    ("filesystem", {"read_file": {"path": "read-path[]"}}, "not an array"),
]


@pytest.mark.parametrize(("server", "change", "why"), HOSTILE_ANNOTATIONS)
def test_a_hostile_annotation_is_refused_and_the_policy_is_untouched(
    policy_dir: Path,
    vendor: Vendor,
    state: Path,
    listings: Listings,
    capsys: pytest.CaptureFixture[str],
    server: str,
    change: dict,
    why: str,
) -> None:
    vendor.script(*_hostile(honest(policy_dir, listings), server, listings, change))
    before = (policy_dir / "policy.yaml").read_bytes()
    workspace = str(policy_dir.parent / "workspace")
    assert run("annotate-tools", policy_dir, vendor, "--workspace", workspace, "--accept") == 1
    err = capsys.readouterr().err
    assert why in err
    assert "not changed" in err
    assert (policy_dir / "policy.yaml").read_bytes() == before
