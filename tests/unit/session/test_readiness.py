from pathlib import Path

from ironcurtain.session.readiness import Part, missing_parts


def test_a_part_is_missing_until_its_module_or_file_exists(tmp_path: Path) -> None:
    parts = (
        Part("present module", module="ironcurtain.images"),
        Part("absent module", module="ironcurtain.no_such_part"),
        Part("absent submodule", module="ironcurtain.no_such_part.inner"),
        Part("present file", path="compose.yaml"),
        Part("absent file", path="compose.shared.yaml"),
    )
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    assert [p.name for p in missing_parts(tmp_path, parts)] == [
        "absent module",
        "absent submodule",
        "absent file",
    ]
