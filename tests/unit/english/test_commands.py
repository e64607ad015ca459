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

from .conftest import KEY, REPO, Vendor

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


@pytest.mark.parametrize(
    ("server", "change", "why"),
    HOSTILE_ANNOTATIONS,
    ids=["injected-none", "unknown-role", "unknown-tool", "missing-tool", "array-mismatch"],
)
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


# -- compile-policy ---------------------------------------------------------------------------


def compile_answer(extra_domain: str = "docs.pytest.org", rules: list | None = None) -> str:
    shipped = yaml.safe_load((REPO / "policy" / "policy.yaml").read_text())
    shipped["lists"]["trusted-docs"].append(extra_domain)
    doc = {
        "lists": shipped["lists"],
        "rules": rules if rules is not None else shipped["rules"],
        "examples": [
            {"call": "fetch__fetch", "arguments": {"url": f"https://{extra_domain}/en/"},
             "expect": "allow"},
            {"call": "git__git_status", "arguments": {"repo_path": "/etc"}, "expect": "deny"},
        ],
    }  # fmt: skip
    return "```yaml\n" + yaml.safe_dump(doc, sort_keys=False) + "```"


def test_compile_policy_shows_a_diff_and_writes_only_when_accepted(
    policy_dir: Path, vendor: Vendor, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (policy_dir / "policy.yaml").read_bytes()
    vendor.script(compile_answer())
    assert run("compile-policy", policy_dir, vendor) == 3  # stdin is no TTY: nobody said yes
    out = capsys.readouterr().out
    assert "+    - docs.pytest.org" in out
    assert "not written (pass --accept" in out
    assert (policy_dir / "policy.yaml").read_bytes() == before
    assert vendor.requests() == 1

    assert run("compile-policy", policy_dir, vendor, "--accept") == 0
    assert vendor.requests() == 1  # same constitution and annotations: the checked answer
    assert "cached answer" in capsys.readouterr().out
    assert b"- docs.pytest.org" in (policy_dir / "policy.yaml").read_bytes()

    assert run("compile-policy", policy_dir, vendor) == 0
    assert "no change" in capsys.readouterr().out
    assert vendor.requests() == 1


def test_compile_policy_asks_again_when_the_constitution_changes(
    policy_dir: Path, vendor: Vendor, state: Path
) -> None:
    vendor.script(compile_answer(), compile_answer("docs.rs"))
    assert run("compile-policy", policy_dir, vendor, "--accept") == 0
    constitution = policy_dir / "constitution.md"
    constitution.write_text(constitution.read_text() + "\n10. docs.rs is documentation too.\n")
    assert run("compile-policy", policy_dir, vendor, "--accept") == 0
    assert vendor.requests() == 2


CATCH_ALL = [{"name": "trust-the-agent", "effect": "allow", "reason": "it knows best"}]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (compile_answer(rules=CATCH_ALL), "allows filesystem__read_file without limiting"),
        (compile_answer("*"), "a wildcard may only lead"),
        ("```yaml\nrules: [oops\n```", "not valid YAML"),
        ("```yaml\nprotected: {paths: []}\nrules: []\nexamples: []\n```", "tries to set protected"),
    ],
    ids=["catch-all", "wildcard", "invalid-yaml", "protected"],
)
def test_a_hostile_compile_answer_leaves_the_policy_byte_identical(
    policy_dir: Path, vendor: Vendor, state: Path, capsys: pytest.CaptureFixture[str],
    answer: str, why: str,
) -> None:  # fmt: skip
    before = (policy_dir / "policy.yaml").read_bytes()
    vendor.script(answer)
    assert run("compile-policy", policy_dir, vendor, "--accept") == 1
    err = capsys.readouterr().err
    assert why in err
    assert "the current policy was not changed" in err
    assert (policy_dir / "policy.yaml").read_bytes() == before
    assert not list((state / "llm-cache").rglob("compile/*"))  # a refused answer: never cached


def test_a_vendor_error_is_a_clear_refusal(
    policy_dir: Path, vendor: Vendor, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (policy_dir / "policy.yaml").read_bytes()
    assert run("compile-policy", policy_dir, vendor, "--model", "error-500", "--accept") == 1
    assert "the LLM vendor answered HTTP 500" in capsys.readouterr().err
    assert (policy_dir / "policy.yaml").read_bytes() == before


def test_without_a_stored_key_nothing_is_sent(
    policy_dir: Path, vendor: Vendor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("IRONCURTAIN_STATE_DIR", str(tmp_path / "empty-state"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-key-must-not-be-used")
    assert run("compile-policy", policy_dir, vendor, "--accept") == 1
    assert "ironcurtain keys set anthropic" in capsys.readouterr().err
    assert vendor.requests() == 0


# -- refresh-lists ----------------------------------------------------------------------------

LISTS = """\
lists:
  trusted-docs:
    kind: domains
    llm: documentation sites for the Python ecosystem
  trusted-remotes:
    kind: remotes
    mcp: {server: notes, tool: org_remotes}
"""


def _rules_of(path: Path) -> str:
    return path.read_text().partition("\nrules:")[2]


def test_refresh_lists_replaces_only_the_lists_it_resolves(
    policy_dir: Path, vendor: Vendor, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policy_dir / "lists.yaml").write_text(LISTS)
    rules = _rules_of(policy_dir / "policy.yaml")
    vendor.script('```json\n{"entries": ["docs.python.org", "docs.pytest.org"]}\n```')
    workspace = str(policy_dir.parent / "workspace")
    assert run("refresh-lists", policy_dir, vendor, "--workspace", workspace, "--accept") == 0
    doc = yaml.safe_load((policy_dir / "policy.yaml").read_text())
    assert doc["lists"]["trusted-docs"] == ["docs.python.org", "docs.pytest.org"]
    assert doc["lists"]["trusted-remotes"] == [
        "https://git.example.com/acme/app.git",
        "git@git.example.com:acme/lib.git",
    ]
    assert doc["lists"]["workspace"] == ["${workspace}"]
    assert _rules_of(policy_dir / "policy.yaml") == rules
    assert "-    - pypi.org" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("lists", "answer", "why"),
    [
        (LISTS, '{"entries": ["*"]}', "a wildcard may only lead"),
        (LISTS, '{"entries": ["10.0.0.1"]}', "is an IP address"),
        (LISTS, '{"entries": ["org"]}', "every host under a top-level domain"),
        (LISTS, '{"entries": [], "rules": []}', '{"entries": [...]} only'),
        (LISTS, "not json", "not valid JSON"),
        (LISTS.replace("org_remotes}", "org_remotes_hostile}"), None, "is not a git remote"),
        (LISTS.replace("kind: domains", "kind: paths"), '{"entries": ["/"]}', "outside the work"),
    ],
    ids=["wildcard", "ip", "tld", "extra-keys", "not-json", "mcp-wildcard", "path-outside"],
)
def test_a_hostile_list_is_refused_and_the_policy_untouched(
    policy_dir: Path, vendor: Vendor, state: Path, capsys: pytest.CaptureFixture[str],
    lists: str, answer: str | None, why: str,
) -> None:  # fmt: skip
    (policy_dir / "lists.yaml").write_text(lists)
    before = (policy_dir / "policy.yaml").read_bytes()
    names = ["--list", "trusted-remotes"] if answer is None else ["--list", "trusted-docs"]
    if answer is not None:
        vendor.script(answer)
    workspace = str(policy_dir.parent / "workspace")
    code = run("refresh-lists", policy_dir, vendor, "--workspace", workspace, "--accept", *names)
    assert code == 1
    assert why in capsys.readouterr().err
    assert (policy_dir / "policy.yaml").read_bytes() == before


def test_refreshing_an_unconfigured_list_is_refused(
    policy_dir: Path, vendor: Vendor, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policy_dir / "lists.yaml").write_text(LISTS)
    assert run("refresh-lists", policy_dir, vendor, "--list", "workspace", "--accept") == 1
    assert "does not say how to resolve 'workspace'" in capsys.readouterr().err


def test_a_missing_constitution_is_a_clear_refusal(
    policy_dir: Path, vendor: Vendor, state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policy_dir / "constitution.md").unlink()
    assert run("compile-policy", policy_dir, vendor, "--accept") == 1
    assert "constitution.md" in capsys.readouterr().err
    assert vendor.requests() == 0
