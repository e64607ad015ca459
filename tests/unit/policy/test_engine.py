"""The default policy as tables of allowed, denied and escalated calls, per tool."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironcurtain.policy import Call, Effect, Engine, LexicalResolver, load_policy

REPO = Path(__file__).resolve().parents[3]
VARIABLES = {
    "workspace": "/ws",
    "policy_dir": "/policy",
    "audit_dir": "/audit",
    "state_dir": "/state",
    "ca_dir": "/ca",
    "secrets_dir": "/run/secrets",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(clock: Clock) -> Engine:
    return Engine(load_policy(REPO / "policy" / "policy.yaml", VARIABLES), LexicalResolver(), clock)


ALLOWED = [
    ("filesystem", "read_text_file", {"path": "/ws/src/main.py"}),
    ("filesystem", "read_text_file", {"path": "src/main.py"}),
    ("filesystem", "read_file", {"path": "/ws/a/../b.txt", "head": 3}),
    ("filesystem", "read_multiple_files", {"paths": ["/ws/a", "b/c"]}),
    ("filesystem", "list_directory", {"path": "/ws"}),
    ("filesystem", "list_directory", {"path": "/ws/"}),
    ("filesystem", "write_file", {"path": "/ws/new.txt", "content": "x"}),
    ("filesystem", "edit_file", {"path": "/ws/a.py", "edits": [{"oldText": "a", "newText": "b"}]}),
    ("filesystem", "create_directory", {"path": "/ws/pkg"}),
    ("filesystem", "search_files", {"path": "/ws", "pattern": "*.py"}),
    ("git", "git_status", {"repo_path": "/ws"}),
    ("git", "git_log", {"repo_path": "/ws", "max_count": 5}),
    ("git", "git_diff", {"repo_path": "/ws", "target": "HEAD~1"}),
    ("git", "git_add", {"repo_path": "/ws", "files": ["a.py"]}),
    ("git", "git_commit", {"repo_path": "/ws", "message": "fix"}),
    ("git", "git_checkout", {"repo_path": "/ws", "branch_name": "main"}),
    ("fetch", "fetch", {"url": "https://docs.python.org/3/library/os.html"}),
    ("fetch", "fetch", {"url": "https://docs.readthedocs.io/en/stable/"}),
    ("fetch", "fetch", {"url": "HTTPS://DOCS.PYTHON.ORG./3/"}),
]

ESCALATED = [
    ("filesystem", "move_file", {"source": "/ws/a", "destination": "/ws/b"}),
    ("fetch", "fetch", {"url": "https://example.com/"}),
    ("fetch", "fetch", {"url": "https://docs.python.org.evil.example/"}),
    ("fetch", "fetch", {"url": "https://notpython.org/"}),
    # Shared hosting: an agent-chosen project name is someone else's site.
    ("fetch", "fetch", {"url": "https://requests.readthedocs.io/en/latest/"}),
    ("fetch", "fetch", {"url": "https://attacker-chosen.readthedocs.io/?leak=x"}),
    ("fetch", "fetch", {"url": "https://readthedocs.io/"}),
]

DENIED = [
    # (call, rule that must decide)
    (("filesystem", "read_text_file", {"path": "/etc/passwd"}), "outside-workspace"),
    (("filesystem", "read_text_file", {"path": "../etc/passwd"}), "outside-workspace"),
    (("filesystem", "read_text_file", {"path": "/ws/../etc/passwd"}), "outside-workspace"),
    (("filesystem", "read_text_file", {"path": "/ws/a/../../etc"}), "outside-workspace"),
    (("filesystem", "read_text_file", {"path": "/wsx/secret"}), "outside-workspace"),
    (("filesystem", "write_file", {"path": "/tmp/x", "content": ""}), "outside-workspace"),
    (
        ("filesystem", "read_multiple_files", {"paths": ["/ws/a", "/etc/shadow"]}),
        "outside-workspace",
    ),
    (
        ("filesystem", "move_file", {"source": "/ws/a", "destination": "/tmp/a"}),
        "outside-workspace",
    ),
    (("git", "git_status", {"repo_path": "/"}), "outside-workspace"),
    (("filesystem", "read_text_file", {"path": "/ws/.env"}), "protected-path"),
    (("filesystem", "read_text_file", {"path": ".env"}), "protected-path"),
    (("filesystem", "read_text_file", {"path": "/ws/.ENV"}), "protected-path"),
    (("filesystem", "read_text_file", {"path": "/ws/.env.local"}), "protected-path"),
    (("filesystem", "read_text_file", {"path": "/ws/sub/.env/"}), "protected-path"),
    (("filesystem", "read_text_file", {"path": "/ws/certs/server.key"}), "protected-path"),
    (
        ("filesystem", "write_file", {"path": "/policy/policy.yaml", "content": ""}),
        "protected-path",
    ),
    (("filesystem", "read_text_file", {"path": "/Policy/policy.yaml"}), "protected-path"),
    (("filesystem", "read_text_file", {"path": "/audit/log.jsonl"}), "protected-path"),
    (("filesystem", "read_text_file", {"path": "/ca/ca.key"}), "protected-path"),
    (("filesystem", "read_text_file", {"path": "/run/secrets/anthropic"}), "protected-path"),
    (("filesystem", "read_text_file", {"path": "/state//x"}), "protected-path"),
    (("filesystem", "list_directory", {"path": "/ws/../state"}), "protected-path"),
    (("filesystem", "read_multiple_files", {"paths": ["/ws/a", "/ws/.env"]}), "protected-path"),
    (("filesystem", "read_text_file", {"path": "/ws/\uff0eenv"}), "bad-arguments"),  # fullwidth
    (("filesystem", "read_text_file", {"path": "/ws/\uff0e\uff0e/etc"}), "bad-arguments"),
    (("filesystem", "read_text_file", {"path": "/ws/a\x00b"}), "bad-arguments"),
    (("filesystem", "read_text_file", {"path": ""}), "bad-arguments"),
    (("filesystem", "read_text_file", {"path": 42}), "bad-arguments"),
    (("filesystem", "read_text_file", {"path": "/ws/a", "extra": 1}), "bad-arguments"),
    (("filesystem", "read_multiple_files", {"paths": "/ws/a"}), "bad-arguments"),
    (("fetch", "fetch", {"url": "file:///etc/passwd"}), "bad-arguments"),
    (("fetch", "fetch", {"url": "https://"}), "bad-arguments"),
    (("fetch", "fetch", {"url": "https://d\u043ecs.python.org/"}), "bad-arguments"),  # cyrillic o
    (("fetch", "fetch", {"url": "https://docs.python.org:99999/"}), "bad-arguments"),
    (("filesystem", "delete_everything", {}), "unknown-tool"),
    (("shell", "run", {"cmd": "rm -rf /"}), "unknown-tool"),
]


@pytest.mark.parametrize("call", ALLOWED, ids=lambda c: f"{c[0]}__{c[1]}")
def test_allowed_calls_are_allowed_by_a_named_rule(engine: Engine, call: tuple) -> None:
    decision = engine.decide(Call(*call))
    assert decision.effect is Effect.ALLOW, decision
    assert decision.rule
    assert decision.reason


@pytest.mark.parametrize("call", ESCALATED, ids=lambda c: f"{c[0]}__{c[1]}")
def test_escalated_calls_escalate(engine: Engine, call: tuple) -> None:
    decision = engine.decide(Call(*call))
    assert decision.effect is Effect.ESCALATE, decision


@pytest.mark.parametrize(("call", "rule"), DENIED, ids=lambda c: str(c)[:60])
def test_forbidden_calls_are_denied_by_the_expected_rule(
    engine: Engine, call: tuple, rule: str
) -> None:
    decision = engine.decide(Call(*call))
    assert decision.effect is Effect.DENY, decision
    assert decision.rule == rule, decision
    assert decision.reason


def test_escalation_carries_resolved_paths_and_domains(engine: Engine) -> None:
    moved = engine.decide(Call("filesystem", "move_file", {"source": "a", "destination": "b"}))
    assert moved.paths == ("/ws/a", "/ws/b")
    fetched = engine.decide(Call("fetch", "fetch", {"url": "https://Example.com/x"}))
    assert fetched.domains == ("example.com",)


def test_twenty_identical_calls_pass_and_the_twenty_first_is_refused(
    engine: Engine, clock: Clock
) -> None:
    call = Call("filesystem", "read_text_file", {"path": "/ws/a"})
    for _ in range(20):
        assert engine.decide(call).effect is Effect.ALLOW
        clock.now += 1
    assert engine.decide(call).rule == "circuit-breaker"
    other = Call("filesystem", "read_text_file", {"path": "/ws/b"})
    assert engine.decide(other).effect is Effect.ALLOW  # only the repeated call is refused
    clock.now += 61
    assert engine.decide(call).effect is Effect.ALLOW  # a quiet window resets it


def test_a_workspace_holding_a_protected_path_is_reported(clock: Clock) -> None:
    variables = {**VARIABLES, "state_dir": "/ws/.state"}
    policy = load_policy(REPO / "policy" / "policy.yaml", variables)
    engine = Engine(policy, LexicalResolver(), clock)
    assert engine.protected_in("/ws") == ("/ws/.state",)
    assert (
        Engine(
            load_policy(REPO / "policy" / "policy.yaml", VARIABLES), LexicalResolver(), clock
        ).protected_in("/ws")
        == ()
    )


# -- the breaker counts what is decided, not how it is spelt -------------------------------

SPELLINGS = {
    "paths": (
        "filesystem",
        "read_text_file",
        "path",
        ["x", "./x", "/ws/x", "/ws//x", "x/", "./x/", "a/../x", "/ws/a/b/../../x", ".//x",
         "/ws/./x"],
    ),
    "urls": (
        "fetch",
        "fetch",
        "url",
        [
            "https://docs.python.org/3/",
            "HTTPS://DOCS.PYTHON.ORG/3/",
            "https://docs.python.org./3/",
            "https://docs.python.org:443/3/",
            "https://docs.python.org/3",
            "https://docs.python.org//3//",
            "https://docs.python.org/a/../3/",
            "https://docs.python.org/./3/",
            "https://docs.python.org/%33/",
            "https://docs.python.org/3/#section",
        ],
    ),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(SPELLINGS))
def test_spellings_of_one_call_count_as_one_call(engine: Engine, kind: str) -> None:
    server, tool, argument, spellings = SPELLINGS[kind]
    effects = []
    for i in range(21):
        call = Call(server, tool, {argument: spellings[i % len(spellings)]})
        effects.append(engine.decide(call).rule)
    assert effects[:20] == [effects[0]] * 20
    assert effects[0] != "circuit-breaker"
    assert effects[20] == "circuit-breaker"


def test_three_hundred_spellings_of_dot_slash_trip_the_breaker(engine: Engine) -> None:
    rules = [
        engine.decide(Call("filesystem", "read_text_file", {"path": "./" * n + "x"})).rule
        for n in range(1, 301)
    ]
    assert rules[:20] == ["workspace-read"] * 20
    assert set(rules[20:]) == {"circuit-breaker"}


def test_argument_order_and_list_spellings_are_one_call(engine: Engine) -> None:
    calls = [
        {"path": "a.txt", "head": 3},
        {"head": 3, "path": "./a.txt"},
    ]
    rules = [engine.decide(Call("filesystem", "read_file", calls[i % 2])).rule for i in range(21)]
    assert rules[-1] == "circuit-breaker"
    many = [["a", "b"], ["./a", "b/"]]
    rules = [
        engine.decide(Call("filesystem", "read_multiple_files", {"paths": many[i % 2]})).rule
        for i in range(21)
    ]
    assert rules[-1] == "circuit-breaker"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"path": "x"}, {"path": "y"}),  # other files
        ({"path": "x"}, {"path": "X"}),  # case matters to the filesystem
        ({"path": "x", "head": 1}, {"path": "x", "head": 2}),  # other content arguments
    ],
)
def test_calls_that_differ_in_effect_are_counted_apart(
    engine: Engine, first: dict[str, object], second: dict[str, object]
) -> None:
    for _ in range(20):
        assert engine.decide(Call("filesystem", "read_file", first)).effect is Effect.ALLOW
    assert engine.decide(Call("filesystem", "read_file", second)).effect is Effect.ALLOW


def test_other_pages_and_queries_are_counted_apart(engine: Engine) -> None:
    for _ in range(20):
        assert engine.decide(Call("fetch", "fetch", {"url": "https://docs.python.org/3/"})).allowed
    for url in (
        "https://docs.python.org/3/?q=1",
        "https://docs.python.org/2/",
        "http://docs.python.org/3/",
    ):
        assert engine.decide(Call("fetch", "fetch", {"url": url})).allowed, url


def test_the_breaker_counts_resolved_paths_through_symlinks(tmp_path: Path, clock: Clock) -> None:
    from ironcurtain.policy import FsResolver

    ws = tmp_path / "ws"
    (ws / "real").mkdir(parents=True)
    (ws / "real" / "x").write_text("x")
    (ws / "link").symlink_to(ws / "real")
    engine = Engine(
        load_policy(REPO / "policy" / "policy.yaml", {**VARIABLES, "workspace": str(ws)}),
        FsResolver(),
        clock,
    )
    spellings = [f"{ws}/real/x", "real/x", "link/x", "./link/../real/x", "link//x", "real/./x"]
    rules = [
        engine.decide(Call("filesystem", "read_text_file", {"path": spellings[i % 6]})).rule
        for i in range(21)
    ]
    assert rules[:20] == ["workspace-read"] * 20
    assert rules[20] == "circuit-breaker"


def test_a_list_argument_holds_at_most_a_thousand_values(engine: Engine) -> None:
    """Each path is resolved while every other call waits: 200 000 of them in one call took 8 s."""
    from ironcurtain.policy.engine import MAX_LIST_VALUES

    many = [f"/ws/f{n}" for n in range(MAX_LIST_VALUES + 1)]
    decision = engine.decide(Call("filesystem", "read_multiple_files", {"paths": many}))
    assert (decision.effect, decision.rule) == (Effect.DENY, "bad-arguments")
    assert "at most 1000 per call" in decision.reason
    enough = many[:MAX_LIST_VALUES]  # control: the limit itself is allowed
    decision = engine.decide(Call("filesystem", "read_multiple_files", {"paths": enough}))
    assert decision.effect is Effect.ALLOW
