"""A repository's own agent image (`.ironcurtain/agent.Dockerfile`), judged before it is used.

The project builds FROM our agent image and adds its toolchain. What its layers may not do is
what our images test of themselves (tests/container/agents/test_agent_images.py): leave a
setuid/setgid file or a file capability, install a way up or out (sudo, ssh, docker, ...),
touch our own files (the entrypoint, the key helper, managed settings), hide the agent's CLI,
or change the image's user, entrypoint, agent label or volumes. Only the project's layers are
judged: the layers below are ours, and the project image must start with exactly them.
Pure: the caller builds the image and reads its layers (images/project_build.py).
"""

from __future__ import annotations

import posixpath
import re
import stat
from collections.abc import Mapping, Sequence
from typing import Any

from .catalog import TAG_PREFIX
from .layers import Change

DOCKERFILE = "agent.Dockerfile"  # in the repository's .ironcurtain/ folder
CHECKS_VERSION = 3  # a remembered verdict counts only for the checks that gave it
PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Not su, runuser, setpriv or nsenter: Debian's own packages carry them (an `apt-get upgrade`
# rewrites them), and with no setuid bit, no capability and no-new-privileges they lift nothing.
FORBIDDEN = frozenset(
    {"sudo", "sudoedit", "su-to-root", "doas", "pkexec", "ssh", "sshd", "ssh-agent", "docker",
     "dockerd", "podman", "nerdctl"}
)  # fmt: skip
# Our own files in the agent images: a project's layers may neither change nor hide them.
OURS = (
    "/usr/local/bin/ironcurtain-agent-init",
    "/usr/local/bin/ironcurtain-api-key",
    "/etc/claude-code",
    "/etc/codex",
)
# What the start-up probe and our entrypoint run on (the image's python3, /bin/sh, the loader,
# libc): a project that replaced them would answer the isolation check for us.
INTERPRETERS = frozenset({"python3", "python", "sh", "dash"})
RUNTIME_FILES = (
    "/etc/ld.so.preload",
    "/usr/bin/python3.11",
    "/opt/venv/bin",
    "/opt/venv/pyvenv.cfg",
)
RUNTIME_NAMES = ("ld-linux", "libc.so", "libpython3")
STDLIB = "/usr/lib/python3.11/"
SITE = ("/dist-packages/", "/site-packages/")
# Variables that steer what the image's programs load: a project may not set or change them.
STEERING_PREFIXES = ("LD_", "PYTHON")
STEERING = frozenset({"NODE_OPTIONS", "BASH_ENV", "ENV", "PERL5OPT", "GCONV_PATH", "SHELL"})
AGENT_LABEL = "org.ironcurtain.agent"
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)
_ROOT_USERS = frozenset({"", "0", "root"})


def dockerfile_problems(text: str, base: str) -> list[str]:
    """The Dockerfile's last stage must build FROM our image `base` (e.g. agent-claude-code)."""
    refs = _FROM.findall(text)
    wanted = f"{TAG_PREFIX}{base}"
    if not refs:
        return [f"{DOCKERFILE} has no FROM line (it must build FROM {wanted}:${{IMAGE_TAG}})"]
    last = refs[-1].split("@", 1)[0]
    if last != wanted and not last.startswith(f"{wanted}:"):
        return [
            f"{DOCKERFILE}'s last stage builds FROM {refs[-1][:80]}, not {wanted}:${{IMAGE_TAG}} "
            "(the agent's own image)"
        ]
    return []


def _under(folder: str, path: str) -> bool:
    """`path` is `folder` or inside it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def layer_problems(
    final: Mapping[str, Change], cli: str, entrypoint: Sequence[str] = ()
) -> list[str]:
    """What the project's layers leave that our images never hold (each problem names a path).
    `entrypoint`: the agent image's, whose program is ours as well."""
    problems: list[str] = []
    commands = [posixpath.join(d, cli) for d in PATH_DIRS]
    ours_here = (*OURS, *(p for p in entrypoint[:1] if p.startswith("/")))
    for change in sorted(final.values(), key=lambda c: (c.path, c.kind)):
        path, name = change.path, posixpath.basename(change.path)
        special = change.mode & (stat.S_ISUID | stat.S_ISGID)
        if change.kind in ("file", "hardlink") and special:
            problems.append(f"{path} is setuid/setgid (mode {change.mode:o})")
        if change.kind == "device":
            problems.append(f"{path} is a device node; an agent image holds none")
        if change.capabilities:
            problems.append(f"{path} carries file capabilities (security.capability)")
        if change.kind in ("file", "link", "hardlink") and name in FORBIDDEN:
            problems.append(f"{path}: {name} is a way up or out, not part of an agent image")
        hides = change.kind != "dir"  # a whiteout, or a file or link where a folder was
        if any(_under(ours, path) for ours in ours_here):
            problems.append(f"{path} is IronCurtain's own file; a project image may not change it")
        elif hides and any(_under(path, ours) for ours in ours_here):
            problems.append(f"{path} would hide IronCurtain's own files below it")
        if change.kind in ("deleted", "opaque") and any(_under(path, d) for d in PATH_DIRS):
            problems.append(f"{path} is emptied or removed, and with it the system's commands")
        if path in commands and change.kind == "deleted":
            problems.append(f"{path}: the agent's command {cli} is removed")
        if path in commands and change.kind == "file" and not change.mode & 0o111:
            problems.append(f"{path}: the agent's command {cli} is not executable")
        if change.kind not in ("dir", "deleted", "opaque") and path in PATH_DIRS:
            problems.append(f"{path} is replaced by a {change.kind}, not a folder of commands")
        if _runtime(path, name) and change.kind != "dir":
            problems.append(
                f"{path}: the interpreter, shell or loader our start-up check runs on may not "
                "be changed by a project"
            )
    return problems


def _runtime(path: str, name: str) -> bool:
    """`path` is part of what our probe and entrypoint run on (INTERPRETERS, RUNTIME_FILES)."""
    if posixpath.dirname(path) in (*PATH_DIRS, "/opt/venv/bin") and name in INTERPRETERS:
        return True
    if any(_under(p, path) for p in RUNTIME_FILES) or name.startswith(RUNTIME_NAMES):
        return True
    return path.startswith(STDLIB) and not any(part in path for part in SITE)


def config_problems(project: Mapping[str, Any], base: Mapping[str, Any]) -> list[str]:
    """`docker image inspect` of the project image against ours (its parent)."""
    problems: list[str] = []
    ours: Sequence[str] = (base.get("RootFS") or {}).get("Layers") or []
    theirs: Sequence[str] = (project.get("RootFS") or {}).get("Layers") or []
    if list(theirs[: len(ours)]) != list(ours):
        problems.append("the image does not build on the agent's own image (its layers differ)")
    config, parent = project.get("Config") or {}, base.get("Config") or {}
    user = str(config.get("User") or "")
    if user.split(":", 1)[0] in _ROOT_USERS or user.split(":", 1)[-1] in {"0", "root"}:
        problems.append(f"the image runs as {user or 'root'!r}; keep the agent's USER agent")
    if config.get("Entrypoint") != parent.get("Entrypoint"):
        problems.append(f"the entrypoint is {config.get('Entrypoint')!r}; keep the agent image's")
    labels, base_labels = config.get("Labels") or {}, parent.get("Labels") or {}
    if labels.get(AGENT_LABEL) != base_labels.get(AGENT_LABEL):
        problems.append(f"the {AGENT_LABEL} label changed; keep the agent image's")
    problems += _env_problems(config.get("Env") or [], parent.get("Env") or [])
    added = sorted(set(config.get("Volumes") or {}) - set(parent.get("Volumes") or {}))
    if added:
        shown = ", ".join(added)
        problems.append(f"the image declares volumes {shown}; a session mounts only ours")
    return problems


def _env_problems(env: Sequence[str], base: Sequence[str]) -> list[str]:
    """A project may add variables and append folders to PATH; it may not put its own folders
    ahead of ours on PATH or set what steers loading (STEERING_PREFIXES, STEERING)."""
    ours = dict(item.partition("=")[::2] for item in base)
    problems = []
    for item in env:
        name, value = item.partition("=")[::2]
        if value == ours.get(name):
            continue
        if name == "PATH":
            if value != ours.get("PATH") and not value.startswith(ours.get("PATH", "") + ":"):
                problems.append("PATH must keep the agent image's folders first (append yours)")
        elif name.startswith(STEERING_PREFIXES) or name in STEERING:
            problems.append(f"the image sets {name}, which steers what its programs load")
    return problems


def new_layers(project: Mapping[str, Any], base: Mapping[str, Any]) -> int:
    """How many layers the project added on top of ours."""
    ours = (base.get("RootFS") or {}).get("Layers") or []
    theirs = (project.get("RootFS") or {}).get("Layers") or []
    return max(0, len(theirs) - len(ours))
