import tarfile
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from ironcurtain.images.build import (
    EXTRA_CA_NAME,
    BuildError,
    BuildSettings,
    ImageBuilder,
    context_files,
    context_tar,
)
from ironcurtain.images.catalog import discover


def _repo(tmp_path: Path) -> Path:
    image = tmp_path / "images" / "svc"
    image.mkdir(parents=True)
    (image / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    (image / "context").write_text("src\n")
    (image / "run.sh").write_text("#!/bin/sh\n")
    (image / "run.sh").chmod(0o755)
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "mod.py").write_text("x = 1\n")
    (src / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    return tmp_path


def test_settings_read_base_image_and_extra_ca_from_the_environment(tmp_path: Path) -> None:
    settings = BuildSettings.from_environ(tmp_path, {"BASE_IMAGE": "x:1", "EXTRA_CA_CERT": "/c"})
    assert settings.base_image == "x:1"
    assert settings.extra_ca_cert == Path("/c")


def test_settings_without_extra_ca_mean_none(tmp_path: Path) -> None:
    settings = BuildSettings.from_environ(tmp_path, {"EXTRA_CA_CERT": "  "})
    assert settings.extra_ca_cert is None
    assert settings.base_image == "debian:bookworm-slim"


def test_context_has_image_folder_extra_paths_and_an_empty_ca(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    files = {f.path: f for f in context_files(discover(repo)["svc"], BuildSettings(repo))}
    assert set(files) == {"Dockerfile", "run.sh", "src/mod.py", EXTRA_CA_NAME}
    assert files["run.sh"].executable
    assert files[EXTRA_CA_NAME].data == b""


def test_extra_ca_bytes_go_into_the_context(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    ca = tmp_path / "corp.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    files = context_files(discover(repo)["svc"], BuildSettings(repo, extra_ca_cert=ca))
    assert next(f for f in files if f.path == EXTRA_CA_NAME).data == ca.read_bytes()


def test_a_missing_extra_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    settings = BuildSettings(repo, extra_ca_cert=tmp_path / "nope.pem")
    with pytest.raises(BuildError, match=r"EXTRA_CA_CERT=.*nope\.pem"):
        context_files(discover(repo)["svc"], settings)


def test_context_tar_is_reproducible_and_keeps_modes(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    files = context_files(discover(repo)["svc"], BuildSettings(repo))
    first, second = context_tar(files).getvalue(), context_tar(files).getvalue()
    assert first == second
    with tarfile.open(fileobj=context_tar(files)) as tar:
        assert tar.getmember("run.sh").mode == 0o755
        assert tar.getmember("src/mod.py").mode == 0o644


class _Image:
    id = "sha256:base"


class _Images:
    def get(self, ref: str) -> _Image:
        if ref.startswith("ironcurtain/"):
            raise docker.errors.ImageNotFound(ref)
        return _Image()


class _Api:
    def __init__(self) -> None:
        self.builds: list[tuple[str, dict[str, str], dict[str, str]]] = []

    def build(self, **kwargs: Any) -> list[dict[str, str]]:
        self.builds.append((kwargs["tag"], kwargs["buildargs"], kwargs["labels"]))
        return [{"stream": "done\n"}]


class _Engine:
    """Enough of docker.DockerClient for ImageBuilder: no image of ours exists yet."""

    def __init__(self) -> None:
        self.images = _Images()
        self.api = _Api()


def _hashes(repo: Path, environ: dict[str, str]) -> tuple[dict[str, str], list[Any]]:
    engine = _Engine()
    settings = BuildSettings.from_environ(repo, environ)
    hashes = ImageBuilder(engine, settings, say=lambda _: None).build()  # type: ignore[arg-type]
    return hashes, engine.api.builds


def test_image_hashes_are_the_same_from_the_environment_and_from_dotenv_alone(
    tmp_path: Path,
) -> None:
    """`make images` (settings exported in the environment) and `ironcurtain run` started
    without make (settings from .env alone) must compute the same hashes, or images rebuild."""
    repo = _repo(tmp_path / "repo")
    ca = tmp_path / "corp.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    settings = {"BASE_IMAGE": "corp/debian:12", "EXTRA_CA_CERT": str(ca)}
    home = {"HOME": str(tmp_path / "home")}  # no user config
    by_env, builds_env = _hashes(repo, {**home, **settings, "IRONCURTAIN_IMAGE_TAG": "wt"})
    (repo / ".env").write_text(
        f'# as .env.example\nBASE_IMAGE=corp/debian:12\nEXTRA_CA_CERT="{ca}"\n'
        "IRONCURTAIN_IMAGE_TAG=wt\n"
    )
    # make exports what it never set as empty; that must not shadow .env
    by_dotenv, builds_dotenv = _hashes(repo, {**home, "BASE_IMAGE": "", "EXTRA_CA_CERT": ""})
    assert by_env == by_dotenv
    assert builds_env == builds_dotenv
    assert builds_env[0][0] == "ironcurtain/svc:wt"
    # control: the extra CA is one of the inputs, so leaving it out changes the hash
    (repo / ".env").unlink()
    without_ca, _ = _hashes(repo, {**home, "BASE_IMAGE": "corp/debian:12"})
    assert without_ca != by_env
