"""Quarantine and name rules, decided from registry metadata alone (pure)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ironcurtain.mitm import quarantine
from ironcurtain.mitm.quarantine import MetadataError, Rules

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
HOST = "pypi.test.internal"
RULES = Rules(quarantine_days=2, deny=("evil-*",), allow=())


def _iso(delta: dt.timedelta) -> str:
    return (NOW - delta).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("age", "refused"),
    [
        (dt.timedelta(days=30), False),
        (dt.timedelta(days=2, seconds=1), False),
        (dt.timedelta(days=2), False),
        (dt.timedelta(days=1, hours=23), True),
        (dt.timedelta(minutes=5), True),
        (dt.timedelta(hours=-1), True),  # published "in the future": refused too
    ],
)
def test_versions_younger_than_the_quarantine_are_refused(age: dt.timedelta, refused: bool) -> None:
    reason = quarantine.age_refusal(RULES, "pkg", "1.0", NOW - age, NOW)
    assert (reason is not None) is refused


def test_a_version_without_a_publish_time_is_refused_fail_closed() -> None:
    reason = quarantine.age_refusal(RULES, "pkg", "1.0", None, NOW)
    assert reason is not None
    assert "no publish time" in reason


def test_a_zero_day_quarantine_refuses_nothing() -> None:
    assert quarantine.age_refusal(Rules(0), "pkg", "1.0", None, NOW) is None


@pytest.mark.parametrize(
    ("rules", "kind", "name", "refused"),
    [
        (RULES, "pypi", "evil-thing", True),
        (RULES, "pypi", "Evil_Thing", True),  # PEP 503 normalisation
        (RULES, "pypi", "good", False),
        (RULES, "npm", "evil-x", True),
        (Rules(allow=("good",)), "npm", "good", False),
        (Rules(allow=("good",)), "npm", "other", True),
        (Rules(allow=("good",), deny=("good",)), "npm", "good", True),  # deny wins
    ],
)
def test_name_rules(rules: Rules, kind: str, name: str, refused: bool) -> None:
    assert (quarantine.name_refusal(rules, kind, name) is not None) is refused


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("2026-11-20T10:00:00Z", True),
        ("2026-11-20T10:00:00.123456Z", True),
        ("2026-11-20T10:00:00+02:00", True),
        ("2026-11-20T10:00:00", True),
        ("yesterday", False),
        ("", False),
        (None, False),
        (12345, False),
    ],
)
def test_publish_times_are_parsed_or_rejected(text: object, ok: bool) -> None:
    assert (quarantine.parse_time(text) is not None) is ok


def _pypi(files: list[dict[str, Any]]) -> bytes:
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "p", "files": files}).encode()


def _file(version: str, age: dt.timedelta | None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": f"p-{version}-py3-none-any.whl",
        "url": f"https://files.test.internal/p-{version}-py3-none-any.whl",
        "hashes": {"sha256": "ab" * 32},
        "core-metadata": True,
        **extra,
    }
    if age is not None:
        entry["upload-time"] = _iso(age)
    return entry


def _page(files: list[dict[str, Any]], **kw: Any) -> quarantine.Page:
    return quarantine.pypi_page(
        _pypi(files), f"https://{HOST}/simple/p/", HOST, "/simple", "p", RULES, NOW, **kw
    )


def test_pypi_young_files_are_yanked_with_the_reason_when_an_older_one_remains() -> None:
    page = _page([_file("1.0", dt.timedelta(days=9)), _file("2.0", dt.timedelta(hours=1))])
    files = json.loads(page.body)["files"]
    assert not files[0].get("yanked")
    assert files[1]["yanked"].startswith("IronCurtain quarantined: p 2.0")
    assert len(page.quarantined) == 1


def test_pypi_files_are_not_yanked_when_nothing_else_remains_but_still_refused() -> None:
    page = _page([_file("2.0", dt.timedelta(hours=1))])
    (entry,) = json.loads(page.body)["files"]
    assert "yanked" not in entry
    (file,) = page.files.values()
    assert file.refusal is not None


def test_pypi_file_urls_on_another_host_are_served_from_the_index_host() -> None:
    page = _page([_file("1.0", dt.timedelta(days=9))])
    (entry,) = json.loads(page.body)["files"]
    assert entry["url"].startswith(f"https://{HOST}/simple/.ironcurtain/files/https/")
    (path,) = page.files
    assert page.files[path].upstream == "https://files.test.internal/p-1.0-py3-none-any.whl"
    assert page.files[path].digests == (("sha256", "ab" * 32),)


def test_pypi_metadata_shortcuts_are_dropped_so_the_file_itself_is_fetched() -> None:
    page = _page([_file("1.0", dt.timedelta(days=9))])
    (entry,) = json.loads(page.body)["files"]
    assert "core-metadata" not in entry


def test_pypi_plain_http_file_urls_are_refused() -> None:
    page = _page([_file("1.0", dt.timedelta(days=9), url="http://files.test.internal/p.whl")])
    (file,) = page.files.values()
    assert file.refusal is not None


def test_a_denied_pypi_project_has_every_file_refused_by_name() -> None:
    page = _page([_file("1.0", dt.timedelta(days=9))], denied="pypi package p is on the deny list")
    (file,) = page.files.values()
    assert file.rule == "registry-name"
    assert "deny list" in (file.refusal or "")


def _packument(times: dict[str, dt.timedelta | None], latest: str) -> bytes:
    versions = {
        v: {
            "name": "n",
            "version": v,
            "dist": {"tarball": f"https://npm.test.internal/n/-/n-{v}.tgz", "shasum": "a" * 40},
        }
        for v in times
    }
    time = {v: _iso(age) for v, age in times.items() if age is not None}
    return json.dumps(
        {
            "name": "n",
            "dist-tags": {"latest": latest, "beta": latest},
            "versions": versions,
            "time": time,
        }
    ).encode()


def test_npm_young_versions_are_deprecated_and_latest_moves_to_the_newest_admitted() -> None:
    data = _packument(
        {
            "1.0.0": dt.timedelta(days=40),
            "1.1.0": dt.timedelta(days=9),
            "2.0.0": dt.timedelta(hours=2),
        },
        "2.0.0",
    )
    page = quarantine.npm_packument(data, "npm.test.internal", "", "n", RULES, NOW)
    doc = json.loads(page.body)
    assert doc["dist-tags"] == {"latest": "1.1.0"}
    assert "quarantined" in doc["versions"]["2.0.0"]["deprecated"]
    assert "deprecated" not in doc["versions"]["1.1.0"]
    assert (
        doc["versions"]["1.1.0"]["dist"]["tarball"] == "https://npm.test.internal/n/-/n-1.1.0.tgz"
    )


def test_npm_versions_without_a_time_are_refused() -> None:
    data = _packument({"1.0.0": dt.timedelta(days=40), "1.1.0": None}, "1.1.0")
    page = quarantine.npm_packument(data, "npm.test.internal", "", "n", RULES, NOW)
    refused = {f.version for f in page.files.values() if f.refusal}
    assert refused == {"1.1.0"}


def test_npm_integrity_is_kept_as_digests() -> None:
    data = json.loads(_packument({"1.0.0": dt.timedelta(days=40)}, "1.0.0"))
    data["versions"]["1.0.0"]["dist"]["integrity"] = "sha512-" + "A" * 86 + "=="
    page = quarantine.npm_packument(
        json.dumps(data).encode(), "npm.test.internal", "", "n", RULES, NOW
    )
    (file,) = page.files.values()
    assert [a for a, _ in file.digests] == ["sha512", "sha1"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_shaped = st.fixed_dictionaries(
    {
        "files": st.lists(
            st.dictionaries(
                st.sampled_from(["filename", "url", "hashes", "upload-time", "yanked"]), _json
            ),
            max_size=3,
        )
    }
) | st.fixed_dictionaries(
    {
        "versions": st.dictionaries(
            st.text(max_size=5),
            st.fixed_dictionaries(
                {
                    "dist": st.dictionaries(
                        st.sampled_from(["tarball", "integrity", "shasum"]), _json
                    )
                }
            ),
            max_size=3,
        ),
        "time": _json,
        "dist-tags": _json,
    }
)


@given(
    st.one_of(
        st.binary(max_size=200),
        _json.map(lambda d: json.dumps(d).encode()),
        _shaped.map(lambda d: json.dumps(d).encode()),
    )
)
def test_metadata_parsers_refuse_anything_malformed_with_metadata_error_only(data: bytes) -> None:
    for parse in (
        lambda: quarantine.pypi_page(
            data, f"https://{HOST}/simple/p/", HOST, "/simple", "p", RULES, NOW
        ),
        lambda: quarantine.npm_packument(data, HOST, "", "n", RULES, NOW),
    ):
        try:
            page = parse()
        except MetadataError:
            continue
        json.loads(page.body)
        for path in page.files:
            assert path.startswith("/")
