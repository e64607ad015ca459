import argparse
import importlib
import subprocess
import sys

import pytest

from ironcurtain.cli import COMMANDS, build_parser, main


def _help_commands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)


def test_help_lists_exactly_the_commands_that_exist(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in _help_commands():
        assert command in out
    assert "images" in _help_commands()
    assert "run" in _help_commands()


def test_an_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_cli_loads_no_web_framework_or_queue_library_until_a_command_needs_one() -> None:
    # Every Python container of a session starts through this module (the proxies' `serve`):
    # Flask, Redis and RQ here cost about 0.2 s of CPU per start (half of the CLI's import).
    heavy = ("flask", "redis", "rq", "mcp", "anthropic", "uvicorn")
    probe = f"import sys, ironcurtain.cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_command_table_names_exactly_what_each_module_registers() -> None:
    registered: dict[str, str] = {}
    for module in dict.fromkeys(COMMANDS.values()):
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module).register(sub)
        registered.update(dict.fromkeys(sub.choices, module))
    assert registered == COMMANDS


@pytest.mark.parametrize(
    "argv", [["mcp-proxy", "serve", "--help"], ["mitm", "serve", "--help"], ["worker", "--help"]]
)
def test_a_command_loads_only_the_module_that_registers_it(argv: list[str]) -> None:
    # A container's start pays for the imports of its own command, not for every command's.
    probe = (
        "import sys\nfrom ironcurtain.cli import COMMANDS, main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted({m for m in COMMANDS.values() if m in sys.modules}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == repr([COMMANDS[argv[0]]])
