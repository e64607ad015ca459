"""Registries as configuration, adoption from the host, and the agent's environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from ironcurtain.cli import main
from ironcurtain.mitm import adopt, ca, host_registries, registries
from ironcurtain.mitm.providers import ConfigError
from ironcurtain.mitm.registries import Kind, from_url

PYPI = from_url("pip", Kind.PYPI, "https://pypi.test.internal/simple")
NPM = from_url("npm", Kind.NPM, "https://npm.test.internal/")
APT = from_url("apt", Kind.APT, "http://apt.test.internal:8080/debian")


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        (Kind.PYPI, "https://10.0.0.1/simple"),  # IP literal
        (Kind.PYPI, "https://[::1]/simple"),
        (Kind.PYPI, "http://pypi.test.internal/simple"),  # plain HTTP: apt only
        (Kind.NPM, "https://user:pw@npm.test.internal/"),  # credentials in the URL
        (Kind.NPM, "https://npm.test.internal/?x=1"),
        (Kind.NPM, "ftp://npm.test.internal/"),
        (Kind.NPM, "https://localhost/"),
    ],
)
def test_registry_urls_that_are_refused(kind: Kind, url: str) -> None:
    with pytest.raises(ConfigError):
        from_url("r", kind, url)


def test_apt_may_use_plain_http_upstream_but_the_agent_always_uses_https() -> None:
    assert APT.upstream_url == "http://apt.test.internal:8080/debian"
    assert APT.agent_url == "https://apt.test.internal/debian"


def test_adopted_host_config_becomes_named_registries_with_apt_sources_merged() -> None:
    apt = adopt.apt_one_line(
        "deb http://deb.test.internal/debian bookworm main\n"
        "deb http://deb.test.internal/debian bookworm-updates main contrib\n"
    )
    found = registries.adopted(
        ["https://a.test.internal/simple", "https://b.test.internal/simple", "not a url"],
        ["https://npm.test.internal/"],
        apt,
    )
    assert [(r.name, r.kind) for r in found] == [
        ("pip", Kind.PYPI),
        ("pip-2", Kind.PYPI),
        ("npm", Kind.NPM),
        ("apt", Kind.APT),
    ]
    assert found[-1].suites == ("bookworm", "bookworm-updates")
    assert found[-1].components == ("main", "contrib")


def test_config_removes_adds_and_replaces_adopted_registries() -> None:
    found = [PYPI, NPM, APT]
    assert registries.plan(found, {"remove": ["npm", "apt.test.internal"]}) == [PYPI]
    added = registries.plan(
        found, {"add": [{"name": "corp", "kind": "npm", "url": "https://corp.test.internal/npm"}]}
    )
    assert [r.name for r in added] == ["pip", "npm", "apt", "corp"]
    replaced = registries.plan(
        found,
        {"adopt": False, "add": [{"kind": "pypi", "url": "https://only.test.internal/simple"}]},
    )
    assert [r.host for r in replaced] == ["only.test.internal"]
    with pytest.raises(ConfigError):
        registries.plan(found, {"adopt": True, "typo": 1})


def test_adopt_from_host_asks_the_tools_and_reads_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.test.internal/debian\nSuites: bookworm\nComponents: main\n"
    )
    answers = {
        "pip": "global.index-url='https://pypi.test.internal/simple'\n",
        "npm": "https://npm.test.internal/\n",
    }
    found = host_registries.adopt_from_host(
        run=lambda argv: answers.get(argv[0]), env={}, apt_dir=tmp_path
    )
    assert [r.agent_url for r in found] == [
        "https://pypi.test.internal/simple",
        "https://npm.test.internal",
        "https://deb.test.internal/debian",
    ]


def test_without_pip_config_pips_own_default_is_asked_from_pip() -> None:
    def run(argv: list[str]) -> str | None:
        return "https://default.test.internal/simple\n" if argv[0] == "python3" else None

    found = host_registries.adopt_from_host(run=run, env={}, apt_dir=Path("/nonexistent"))
    assert [r.host for r in found] == ["default.test.internal"]


def test_the_agent_environment_points_every_tool_at_the_proxy_side_https_urls() -> None:
    apt = registries.parse_entry(
        {
            "kind": "apt",
            "url": "http://apt.test.internal/debian",
            "suites": ["stable"],
            "components": ["main"],
            "options": {"signed-by": "/usr/share/keyrings/k.gpg"},
        }
    )
    env = registries.agent_environment([PYPI, NPM, apt])
    assert env["PIP_INDEX_URL"] == "https://pypi.test.internal/simple/"
    assert env["NPM_CONFIG_REGISTRY"] == "https://npm.test.internal/"
    assert env["IRONCURTAIN_APT_SOURCES"] == (
        "deb [signed-by=/usr/share/keyrings/k.gpg] https://apt.test.internal/debian stable main"
    )


def test_settings_refuse_unknown_fields_duplicate_registries_and_negative_quarantine() -> None:
    entry = {"kind": "pypi", "url": "https://pypi.test.internal/simple"}
    for doc in (
        {"list": [entry], "quarantine": 2},
        {"list": [entry, {**entry, "name": "other"}]},
        {"list": [entry], "quarantine_days": -1},
        {"list": [{**entry, "kind": "gem"}]},
    ):
        with pytest.raises(ConfigError):
            registries.parse(doc)


def test_ca_init_also_permits_the_registry_hosts_given(tmp_path: Path) -> None:
    assert main(["ca", "init", "--dir", str(tmp_path / "ca"), "--host", "pypi.test.internal"]) == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "ca" / ca.CERT_FILE).read_bytes())
    constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    permitted = {n.value for n in constraints.permitted_subtrees or ()}
    assert "pypi.test.internal" in permitted
    assert "api.anthropic.com" in permitted
