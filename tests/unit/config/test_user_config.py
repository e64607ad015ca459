"""The user's session defaults and `ironcurtain config`: admitted, refused, edited in place."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from ironcurtain.config import edit, user
from ironcurtain.session.command import user_defaults
from ironcurtain.session.config_command import interactive, save, show

AGENTS = ("claude-code", "codex", "scripted")
DOWN, ENTER = "\x1b[B", "\r"


def test_session_and_budget_defaults_are_read_with_false_as_no_limit() -> None:
    got = user.parse(
        {"agent": "codex", "escalation_timeout_s": 60},
        {"tokens": 5000, "requests": False, "cost_usd": 1.5},
        AGENTS,
    )
    assert got == user.SessionDefaults("codex", 60.0, {"tokens": 5000, "requests": None,
                                                         "cost_usd": 1.5})  # fmt: skip
    assert user.parse(None, None, AGENTS) == user.SessionDefaults()  # control: all defaults


@pytest.mark.parametrize(
    ("session", "budget", "named"),
    [
        ({"agent": "rootkit"}, None, "session.agent: 'rootkit' is not one of"),
        ({"agent": 3}, None, "session.agent"),
        ({"escalation_timeout_s": 0}, None, "session.escalation_timeout_s: above 0"),
        ({"escalation_timeout_s": float("inf")}, None, "session.escalation_timeout_s"),
        ({"escalation_timeout_s": True}, None, "session.escalation_timeout_s: a number"),
        ({"model": "x"}, None, "session: unknown model"),
        ("codex", None, "session: a table"),
        (None, {"tokens": 1.5}, "budget.tokens: a whole number"),
        (None, {"tokens": -1}, "budget.tokens: above 0"),
        (None, {"cost_usd": float("nan")}, "budget.cost_usd: above 0"),
        (None, {"cost_usd": "5"}, "budget.cost_usd: a number or false"),
        (None, {"seconds": True}, "budget.seconds: a number or false"),
        (None, {"dollars": 5}, "budget: unknown dollars"),
    ],
)
def test_every_other_shape_is_refused_naming_the_field(
    session: object, budget: object, named: str
) -> None:
    with pytest.raises(user.UserConfigError) as caught:
        user.parse(session, budget, AGENTS)
    assert named in str(caught.value)


def _config(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "ironcurtain" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return {"XDG_CONFIG_HOME": str(tmp_path)}


def test_run_takes_its_defaults_from_the_user_config(tmp_path: Path) -> None:
    environ = _config(tmp_path, '[session]\nagent = "codex"\n[budget]\ncost_usd = 2\n')
    got = user_defaults(environ)
    assert (got.agent, dict(got.budget)) == ("codex", {"cost_usd": 2.0})
    _config(tmp_path, "[budget]\ncost_usd = -2\n")
    with pytest.raises(ValueError, match=r"config\.toml: budget\.cost_usd"):
        user_defaults(environ)


COMMENTED = """# my settings
image_tag = "mine"  # the tag I build

[budget]
# a tight wall
cost_usd = 1
"""


def test_an_edit_keeps_the_users_comments_and_order() -> None:
    edited = edit.apply(COMMENTED, "budget.tokens", 5000, AGENTS)
    assert edited.startswith('# my settings\nimage_tag = "mine"  # the tag I build\n')
    assert "# a tight wall\ncost_usd = 1\ntokens = 5000\n" in edited
    removed = edit.apply(edited, "budget.cost_usd", None, AGENTS)
    assert "cost_usd" not in removed
    assert "tokens = 5000" in removed
    assert "[budget]" not in edit.apply(removed, "budget.tokens", None, AGENTS)  # empty: gone


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("budget.cost_usd", "-3", "budget.cost_usd: above 0"),
        ("budget.cost_usd", "lots", "budget.cost_usd: 'lots' is not a number"),
        ("session.agent", "rootkit", "not one of"),
        ("api_key", "sk-ant-api03-x", "unknown setting 'api_key'"),
        ("budget", "1", "unknown setting 'budget'"),
    ],
)
def test_an_edit_a_run_would_refuse_is_refused_and_nothing_changes(
    name: str, value: str, named: str
) -> None:
    with pytest.raises(edit.EditError) as caught:
        edit.apply(COMMENTED, name, edit.value_of(name, value), AGENTS)
    assert named in str(caught.value)


def test_a_file_a_run_would_refuse_is_named_before_any_edit() -> None:
    with pytest.raises(edit.EditError, match="unknown setting 'colour'"):
        edit.apply('colour = "red"\n', "image_tag", "x", AGENTS)
    with pytest.raises(edit.EditError, match="not valid TOML"):
        edit.apply("image_tag = \n", "image_tag", "x", AGENTS)


def test_save_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "config.toml"
    save(path, COMMENTED)
    assert path.read_text() == COMMENTED
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temporary left
    assert "budget.cost_usd = 1" in show(COMMENTED, path)


def test_the_interactive_editor_asks_with_real_prompts_and_saves_a_checked_file() -> None:
    # Down to budget.cost_usd (the 9th setting), a bad value first (refused as typed, so the
    # prompt stays), then a good one; then "save and quit" (after the last setting).
    names = [s.name for s in edit.SETTINGS]
    to_cost = DOWN * names.index("budget.cost_usd")
    to_save = DOWN * len(names)
    with create_pipe_input() as pipe:
        pipe.send_text(to_cost + ENTER)
        pipe.send_text("\x7f" * 3 + "-1" + ENTER)  # refused by the validator
        pipe.send_text("\x7f" * 2 + "2.5" + ENTER)
        pipe.send_text(to_save + ENTER)
        edited = interactive(COMMENTED, AGENTS, input=pipe, output=DummyOutput())
    assert edited is not None
    assert tomllib.loads(edited)["budget"]["cost_usd"] == 2.5
    assert "# a tight wall" in edited


def test_quitting_the_interactive_editor_saves_nothing() -> None:
    with create_pipe_input() as pipe:
        pipe.send_text(DOWN * (len(edit.SETTINGS) + 1) + ENTER)
        assert interactive(COMMENTED, AGENTS, input=pipe, output=DummyOutput()) is None


def test_an_edit_is_checked_against_the_providers_a_run_knows() -> None:
    typo = '[[prices.antropic]]\nmodel = "m"\ninput = 1\noutput = 1\n'
    with pytest.raises(edit.EditError, match=r"prices\.antropic: unknown provider"):
        edit.apply(typo, "budget.tokens", 1000, AGENTS, frozenset({"anthropic"}))


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[budget]\ntokens = " + "9" * 400 + "\n", "budget.tokens: above 0 and at most"),
        ("[[prices.anthropic]]\nmodel = 'm'\ninput = " + "9" * 400 + "\noutput = 1\n",
         "input: between"),
        ('session = "codex"\n', "session: a table"),
        ("[[budget]]\ntokens = 5\n", "budget: a table"),
    ],
)  # fmt: skip
def test_a_malformed_file_is_refused_not_a_traceback(text: str, named: str) -> None:
    with pytest.raises(edit.EditError) as caught:
        edit.apply(text, "budget.cost_usd", 2, AGENTS)
    assert named in str(caught.value)


def test_save_keeps_the_files_mode_and_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "config.toml"
    real.parent.mkdir()
    real.write_text("")
    real.chmod(0o600)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    save(link, COMMENTED)
    assert link.is_symlink()
    assert real.read_text() == COMMENTED
    assert oct(real.stat().st_mode & 0o777) == "0o600"
