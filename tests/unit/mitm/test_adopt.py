"""Reading the host's pip, npm and apt configuration: tables, and Hypothesis for robustness."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.mitm import adopt

MIRROR = "https://pypi.mirror.test.internal/simple"
EXTRA = "https://extra.test.internal/simple"


def test_pip_config_list_gives_the_index_url_then_extra_index_urls() -> None:
    output = (
        f"global.index-url='{MIRROR}'\n"
        f"global.extra-index-url='{EXTRA}\\nhttps://third.test.internal/simple'\n"
        "global.timeout='60'\n"
    )
    assert adopt.pip_config_list(output) == [
        MIRROR,
        EXTRA,
        "https://third.test.internal/simple",
    ]


def test_pip_config_list_of_an_unconfigured_pip_is_empty() -> None:
    assert adopt.pip_config_list("") == []


def test_pip_env_splits_extra_index_urls_on_spaces() -> None:
    env = {"PIP_INDEX_URL": MIRROR, "PIP_EXTRA_INDEX_URL": f"{EXTRA} not-a-url"}
    assert adopt.pip_env(env) == [MIRROR, EXTRA]


def test_npm_config_get_registry_output_is_one_url() -> None:
    assert adopt.npm_registry_output("https://npm.test.internal/\n") == [
        "https://npm.test.internal/"
    ]
    assert adopt.npm_registry_output("undefined\n") == []


def test_apt_one_line_sources_with_options_and_comments() -> None:
    text = (
        "# comment\n"
        "deb http://deb.test.internal/debian bookworm main contrib\n"
        "deb-src http://deb.test.internal/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/k.gpg arch=amd64] "
        "https://x.test.internal/r stable main\n"
        "deb https://flat.test.internal/repo ./\n"
        "deb https://broken.test.internal/debian bookworm\n"
    )
    sources = adopt.apt_one_line(text)
    assert [s.uri for s in sources] == [
        "http://deb.test.internal/debian",
        "https://x.test.internal/r",
        "https://flat.test.internal/repo",
    ]
    assert sources[0].components == ("main", "contrib")
    assert ("signed-by", "/usr/share/keyrings/k.gpg") in sources[1].options


def test_apt_deb822_sources_skip_disabled_and_source_only_stanzas() -> None:
    text = (
        "Types: deb\nURIs: http://deb.test.internal/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb-src\nURIs: http://deb.test.internal/debian\nSuites: bookworm\n"
        "Components: main\n\n"
        "Types: deb\nURIs: https://off.test.internal/x\nSuites: s\nComponents: c\nEnabled: no\n"
    )
    (source,) = adopt.apt_deb822(text)
    assert source.uri == "http://deb.test.internal/debian"
    assert source.suites == ("bookworm", "bookworm-updates")
    assert source.options == (("signed-by", "/usr/share/keyrings/debian-archive-keyring.gpg"),)


_lines = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(
            [
                "deb https://a.test.internal/d s main",
                "deb [trusted=yes] https://b.test.internal/d ./",
                "Types: deb",
                "URIs: https://c.test.internal/x",
                "Suites: s",
                "Components: c",
                "global.index-url='https://d.test.internal/simple'",
                "registry=https://e.test.internal/",
                "[global]",
                "index-url = https://f.test.internal/simple",
                "",
            ]
        ),
    ),
    max_size=20,
).map("\n".join)


@given(_lines)
def test_every_parser_takes_any_text_and_returns_only_http_urls(text: str) -> None:
    for parse in (adopt.pip_config_list, adopt.npm_registry_output):
        for url in parse(text):
            assert url.startswith(("http://", "https://"))
            assert not any(c.isspace() for c in url)
    for source in adopt.apt_one_line(text) + adopt.apt_deb822(text):
        assert source.uri.startswith(("http://", "https://"))
        assert source.suites
