"""The entry point: refuses with a message and exit 64, or writes the config and execs HAProxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironcurtain.socketproxy import __main__ as entry
from ironcurtain.socketproxy.engine import EngineError
from ironcurtain.socketproxy.rules import ApiRange


@pytest.fixture(autouse=True)
def engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entry, "api_range", lambda path: ApiRange((1, 12), (1, 41)))


def test_a_refused_setting_exits_64_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SOCKETPROXY_CONFIG", str(tmp_path / "haproxy.cfg"))
    monkeypatch.setenv("EXEC", "1")
    monkeypatch.setattr(entry.os, "execvp", pytest.fail)
    assert entry.main() == 64
    assert "refusing to start: EXEC" in capsys.readouterr().err
    assert not (tmp_path / "haproxy.cfg").exists()


def test_an_unwritable_config_path_exits_64(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SOCKETPROXY_CONFIG", str(tmp_path / "missing" / "haproxy.cfg"))
    monkeypatch.setattr(entry.os, "execvp", pytest.fail)
    assert entry.main() == 64
    assert "cannot write" in capsys.readouterr().err


def test_a_good_setting_writes_the_config_and_execs_haproxy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    target = tmp_path / "haproxy.cfg"
    monkeypatch.setenv("SOCKETPROXY_CONFIG", str(target))
    monkeypatch.setenv("CONTAINERS", "1")
    monkeypatch.setenv("VISIBLE_CONTAINERS", "web-1")
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(entry.os, "execvp", lambda file, argv: calls.append((file, argv)))
    entry.main()
    assert calls == [("haproxy", ["haproxy", "-db", "-f", str(target)])]
    assert "containers/(web-1)/json" in target.read_text()


def test_an_engine_that_does_not_say_its_api_version_stops_the_proxy_with_69(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def refuse(path: str) -> ApiRange:
        raise EngineError(f"cannot ask the engine at {path}")

    monkeypatch.setenv("SOCKETPROXY_CONFIG", str(tmp_path / "haproxy.cfg"))
    monkeypatch.setattr(entry, "api_range", refuse)
    monkeypatch.setattr(entry.os, "execvp", pytest.fail)
    assert entry.main() == 69
    assert "cannot ask the engine" in capsys.readouterr().err
    assert not (tmp_path / "haproxy.cfg").exists()
