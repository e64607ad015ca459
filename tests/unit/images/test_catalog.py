from pathlib import Path

import pytest

from ironcurtain.images.catalog import CatalogError, build_order, discover, image_ref, parents_of


def _image(root: Path, name: str, dockerfile: str, context: str | None = None) -> None:
    folder = root / "images" / name
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_text(dockerfile)
    if context is not None:
        (folder / "context").write_text(context)


def test_parents_are_only_our_own_images() -> None:
    text = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS build\nFROM ironcurtain/python:latest\n"
    assert parents_of(text) == ("python",)


def test_parents_ignore_platform_flag_and_digest() -> None:
    assert parents_of("from --platform=linux/amd64 ironcurtain/base@sha256:ab") == ("base",)


def test_parents_come_before_children_in_build_order(tmp_path: Path) -> None:
    _image(tmp_path, "python", "FROM ${BASE_IMAGE}\n")
    _image(tmp_path, "mcp", "FROM ironcurtain/python\n")
    _image(tmp_path, "agent", "FROM ironcurtain/mcp\n")
    order = [spec.name for spec in build_order(discover(tmp_path), ["agent"])]
    assert order == ["python", "mcp", "agent"]


def test_build_order_of_everything_lists_each_image_once(tmp_path: Path) -> None:
    _image(tmp_path, "a", "FROM ironcurtain/c\n")
    _image(tmp_path, "b", "FROM ironcurtain/c\n")
    _image(tmp_path, "c", "FROM ${BASE_IMAGE}\n")
    order = [spec.name for spec in build_order(discover(tmp_path))]
    assert order == ["c", "a", "b"]


def test_a_cycle_is_refused(tmp_path: Path) -> None:
    _image(tmp_path, "a", "FROM ironcurtain/b\n")
    _image(tmp_path, "b", "FROM ironcurtain/a\n")
    with pytest.raises(CatalogError, match="cycle"):
        build_order(discover(tmp_path))


def test_an_unknown_parent_is_refused_with_who_needs_it(tmp_path: Path) -> None:
    _image(tmp_path, "a", "FROM ironcurtain/ghost\n")
    with pytest.raises(CatalogError, match=r"'ghost' \(needed by a\)"):
        build_order(discover(tmp_path))


def test_context_listing_outside_the_repository_is_refused(tmp_path: Path) -> None:
    _image(tmp_path, "a", "FROM ${BASE_IMAGE}\n", context="../../etc/passwd\n")
    with pytest.raises(CatalogError, match="not a path inside the repository"):
        discover(tmp_path)


def test_context_listing_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    _image(tmp_path, "a", "FROM ${BASE_IMAGE}\n", context="# source\n\nservices/\n")
    assert discover(tmp_path)["a"].extra_paths == ("services",)


def test_every_image_in_the_repository_starts_from_the_base_image_arg() -> None:
    repo = Path(__file__).resolve().parents[3]
    specs = discover(repo)
    assert {"python", "redis"} <= set(specs)
    for spec in specs.values():
        text = (spec.directory / "Dockerfile").read_text()
        first_from = next(line for line in text.splitlines() if line.upper().startswith("FROM"))
        assert first_from.split()[1] in {
            "${BASE_IMAGE}",
            *(f"ironcurtain/{p}" for p in spec.parents),
            *(f"ironcurtain/{p}:${{IMAGE_TAG}}" for p in spec.parents),
        }
        assert "ARG BASE_IMAGE" in text or spec.parents, spec.name


def test_parents_built_from_this_worktrees_tag_are_found() -> None:
    text = "ARG IMAGE_TAG=latest\nFROM ironcurtain/python:${IMAGE_TAG}\n"
    assert parents_of(text) == ("python",)


def test_image_refs_carry_the_worktree_tag() -> None:
    assert image_ref("python") == "ironcurtain/python:latest"
    assert image_ref("python", "wt-mitm") == "ironcurtain/python:wt-mitm"
