"""Resource reads and prompt gets decided as calls (policy/resources.py): a file: URI is a read
path under the workspace rules, an http(s) URI a URL under the domain rules, any other scheme
only what a rule naming `resources/read` allows; spellings two readers could take apart are
refused first. Each attack has a control that the honest read is allowed."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from ironcurtain.policy import Call, Effect, Engine, FsResolver, LexicalResolver, parse_policy
from ironcurtain.policy.engine import BAD_ARGUMENTS, NO_MATCH, PROTECTED_PATH, UNKNOWN_TOOL
from ironcurtain.policy.loader import PolicyError
from ironcurtain.policy.resources import PROMPT_GET, RESOURCE_READ, UriRefused, read_arguments

POLICY = """\
version: 1
protected: {paths: ["/ws/.git/hooks", "/secrets"], names: [".env"]}
lists:
  workspace: ["${workspace}"]
  docs: [docs.python.org]
servers:
  files:
    root: ${workspace}
    tools: {}
  notes:
    tools: {}
  other:
    tools: {}
rules:
  - name: workspace-read
    effect: allow
    reason: the workspace is readable
    when: {roles: [read-path], paths_within: workspace}
  - name: docs
    effect: allow
    reason: trusted docs
    when: {roles: [url], domains_in: docs}
  - name: notes-resources
    effect: allow
    reason: the notes server's own resources
    server: notes
    tools: [resources/read, prompts/get]
  - name: everything-else-of-other
    effect: allow
    reason: a rule over a whole server does not reach its resources
    server: other
"""


def engine_for(workspace: str, resolver: object = None) -> Engine:
    policy = parse_policy(POLICY, "policy.yaml", {"workspace": workspace})
    return Engine(policy, resolver or LexicalResolver(), lambda: 0.0)  # type: ignore[arg-type]


@pytest.fixture
def engine() -> Engine:
    return engine_for("/ws")


def test_a_file_read_in_the_workspace_is_allowed(engine: Engine) -> None:  # the control
    decision = engine.decide_read("files", "file:///ws/src/main.py")
    assert (decision.effect, decision.rule) == (Effect.ALLOW, "workspace-read")
    assert decision.paths == ("/ws/src/main.py",)
    assert engine.decide_read("files", "file://localhost/ws/a%20b.txt").effect is Effect.ALLOW
    assert engine.decide_read("files", "FILE:/ws/x").effect is Effect.ALLOW


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "file:/etc/shadow",
        "file:///ws2/x",  # a sibling with the workspace's name as a prefix
        "file:///",
    ],
)
def test_a_file_read_outside_the_workspace_is_denied(engine: Engine, uri: str) -> None:
    assert engine.decide_read("files", uri).rule == NO_MATCH


@pytest.mark.parametrize(
    "uri",
    [
        "file:///ws/../etc/passwd",
        "file:///ws/./x",
        "file:///ws/%2e%2e/etc/passwd",
        "file:///ws/%2E%2E/etc/passwd",
        "file:///ws/.%2e/etc/passwd",
        "file:///ws/%252e%252e/etc/passwd",  # decoded once: '%2e%2e' (a second decoding: '..')
        "file:///ws/a%5c..%5cetc",  # a backslash, decoded: refused as '%' is not, below
        "file:///ws\\..\\etc\\passwd",
        "file://evil.example/ws/x",  # another host (UNC on some readers)
        "file://127.0.0.1/ws/x",
        "file:///ws/x?raw=1",
        "file:///ws/x#frag",
        "file:ws/relative",
        "file:///ws/%ff%fe",  # not UTF-8
        "file:///ws/caf\u00e9",  # an IRI: not ASCII
        "\uff46\uff49\uff4c\uff45:///etc/passwd",  # full-width 'file'
        "file:///ws/\u0430.txt",  # Cyrillic a
        " file:///etc/passwd",
        "file:///ws/a b",
        "file:///ws/a\tb",
        "",
        "no-scheme-at-all",
        "://x",
        "1http://example.org/",
    ],
)
def test_ambiguous_spellings_are_refused_before_any_rule(engine: Engine, uri: str) -> None:
    decision = engine.decide_read("files", uri)
    assert (decision.effect, decision.rule) == (Effect.DENY, BAD_ARGUMENTS), decision


def test_a_decoded_control_character_is_refused(engine: Engine) -> None:
    assert engine.decide_read("files", "file:///ws/a%00b").rule == BAD_ARGUMENTS
    assert engine.decide_read("files", "file:///ws/a%0ab").rule == BAD_ARGUMENTS


@pytest.mark.parametrize(
    "uri", ["file:///ws/.env", "file:///ws/sub/.ENV", "file:///ws/.git/hooks/pre-commit"]
)
def test_a_protected_path_is_refused_whatever_the_rules(engine: Engine, uri: str) -> None:
    assert engine.decide_read("files", uri).rule == PROTECTED_PATH


def test_a_protected_name_spelt_with_escapes_is_still_protected(engine: Engine) -> None:
    assert engine.decide_read("files", "file:///ws/%2Eenv").rule == PROTECTED_PATH
    assert engine.decide_read("files", "file:///ws/%2e%45%4e%56").rule == PROTECTED_PATH


def test_a_symlink_out_of_the_workspace_is_followed_and_denied(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "ok.txt").write_text("fine")
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", ws / "link.txt")
    os.symlink(tmp_path, ws / "up")
    engine = engine_for(str(ws), FsResolver())
    assert engine.decide_read("files", f"file://{ws}/src/ok.txt").effect is Effect.ALLOW
    assert engine.decide_read("files", f"file://{ws}/link.txt").rule == NO_MATCH
    assert engine.decide_read("files", f"file://{ws}/up/outside.txt").rule == NO_MATCH


def test_a_unicode_equivalent_of_a_protected_name_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "caf\u00e9").write_text("x")  # NFC on disk
    engine = engine_for(str(ws), FsResolver())
    nfd = unicodedata.normalize("NFD", "caf\u00e9")  # another reader's spelling of it
    escaped = "".join(f"%{b:02X}" for b in nfd.encode())
    decision = engine.decide_read("files", f"file://{ws}/{escaped}")
    assert decision.effect is Effect.DENY, decision
    fine = "".join(f"%{b:02X}" for b in "caf\u00e9".encode())
    assert engine.decide_read("files", f"file://{ws}/{fine}").effect is Effect.ALLOW
    # '.env' in full-width letters folds to '.env': protected.
    wide = "".join(f"%{b:02X}" for b in ".\uff45\uff4e\uff56".encode())
    assert engine.decide_read("files", f"file://{ws}/{wide}").effect is Effect.DENY


def test_http_reads_are_decided_by_the_domain_rules(engine: Engine) -> None:
    allowed = engine.decide_read("files", "https://docs.python.org/3/")
    assert (allowed.effect, allowed.rule) == (Effect.ALLOW, "docs")
    assert engine.decide_read("files", "HTTPS://DOCS.PYTHON.ORG./3/").effect is Effect.ALLOW
    assert engine.decide_read("files", "https://evil.example/").rule == NO_MATCH
    assert engine.decide_read("files", "https://docs.python.org.evil.example/").rule == NO_MATCH
    assert engine.decide_read("files", "https://docs.python.org@evil.example/").rule == NO_MATCH
    assert engine.decide_read("files", "http://xn--80ak6aa92e.com/").rule == NO_MATCH


@pytest.mark.parametrize(
    "uri", ["test://static-text", "postgres://db/table", "data:text/plain,hi", "git://x/y"]
)
def test_other_schemes_need_a_rule_naming_resources_read(engine: Engine, uri: str) -> None:
    assert engine.decide_read("notes", uri).effect is Effect.ALLOW  # the control
    assert engine.decide_read("files", uri).rule == NO_MATCH  # default deny
    # A rule over all of a server's tools does not reach its resources.
    assert engine.decide_read("other", uri).rule == NO_MATCH


def test_a_server_the_policy_does_not_know_reads_nothing(engine: Engine) -> None:
    assert engine.decide_read("stranger", "test://x").rule == UNKNOWN_TOOL
    assert engine.decide_read("stranger", "file:///ws/a").rule == UNKNOWN_TOOL


def test_prompt_gets_need_a_rule_naming_prompts_get(engine: Engine) -> None:
    call = {"name": "summary", "arguments": {"topic": "x"}}
    assert engine.decide(Call("notes", PROMPT_GET, call)).effect is Effect.ALLOW
    assert engine.decide(Call("files", PROMPT_GET, call)).rule == NO_MATCH
    assert engine.decide(Call("other", PROMPT_GET, call)).rule == NO_MATCH
    assert engine.decide(Call("notes", PROMPT_GET, {"name": "x", "sneak": 1})).rule == (
        BAD_ARGUMENTS
    )


def test_a_policy_cannot_declare_the_pseudo_tools_as_tools() -> None:
    text = POLICY.replace(
        "  notes:\n    tools: {}", "  notes:\n    tools:\n      resources/read: {}"
    )
    with pytest.raises(PolicyError, match="not a tool to declare"):
        parse_policy(text, "policy.yaml", {"workspace": "/ws"})


def test_read_arguments_by_scheme() -> None:
    assert read_arguments("file:///a/b%20c") == {"path": "/a/b c"}
    assert read_arguments("https://x.org/") == {"url": "https://x.org/"}
    assert read_arguments("test://t") == {"uri": "test://t"}
    with pytest.raises(UriRefused):
        read_arguments(None)
    with pytest.raises(UriRefused):
        read_arguments("x:" + "a" * 9000)
    assert RESOURCE_READ == "resources/read"


def test_a_rule_naming_resources_read_decides_no_path_or_url(engine: Engine) -> None:
    assert engine.decide_read("notes", "test://x").effect is Effect.ALLOW  # the control
    assert engine.decide_read("notes", "file:///etc/passwd").rule == NO_MATCH
    assert engine.decide_read("notes", "https://evil.example/").rule == NO_MATCH
    assert engine.decide_read("notes", "file:///ws/a").rule == "workspace-read"


def test_the_default_policy_reads_workspace_files_and_nothing_else() -> None:
    from ironcurtain.policy import load_policy

    repo = Path(__file__).resolve().parents[3]
    variables = {
        "workspace": "/ws",
        "policy_dir": "/policy",
        "audit_dir": "/audit",
        "state_dir": "/state",
        "ca_dir": "/ca",
        "secrets_dir": "/run/secrets",
    }
    engine = Engine(
        load_policy(repo / "policy" / "policy.yaml", variables), LexicalResolver(), lambda: 0.0
    )
    assert engine.decide_read("filesystem", "file:///ws/src/a.py").effect is Effect.ALLOW
    assert engine.decide_read("filesystem", "file:///etc/passwd").effect is Effect.DENY
    assert engine.decide_read("filesystem", "file:///ws/.env").rule == PROTECTED_PATH
    assert engine.decide_read("git", "file:///policy/policy.yaml").rule == PROTECTED_PATH
    for server in ("filesystem", "git", "fetch"):
        assert engine.decide_read(server, "test://anything").rule == NO_MATCH
        call = Call(server, PROMPT_GET, {"name": "p", "arguments": {}})
        assert engine.decide(call).rule == NO_MATCH
    # A URL read is never allowed outright: fetch's trusted-docs rule selects no role.
    assert engine.decide_read("fetch", "https://docs.python.org/3/").effect is Effect.ESCALATE
    assert engine.decide_read("filesystem", "https://docs.python.org/3/").rule == NO_MATCH
