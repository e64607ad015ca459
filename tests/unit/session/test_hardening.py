"""Agent hardening: the settings it produces, and the checker that reads a container back."""

from __future__ import annotations

from typing import Any

import pytest

from ironcurtain.session.hardening import (
    AgentHardening,
    HardeningError,
    Limits,
    sidecar_compose_service,
    socket_group_problem,
    violations,
)
from ironcurtain.session.networks import AGENT, CONTROL, INHIBIT_IPV4

HARDENING = AgentHardening(workspace="/srv/sessions/s1/workspace")


def _inspected() -> dict[str, Any]:
    """What `docker inspect` shows for an agent container compose started with HARDENING."""
    return {
        "Config": {"User": "10100:10100", "Env": ["PATH=/usr/bin", "HOME=/home/agent"]},
        "HostConfig": {
            "Privileged": False,
            "CapDrop": ["ALL"],
            "CapAdd": None,
            "SecurityOpt": ["no-new-privileges:true"],
            "ReadonlyRootfs": True,
            "Sysctls": {"net.ipv6.conf.all.disable_ipv6": "1"},
            "PidsLimit": 512,
            "Memory": 4 * 1024**3,
            "NanoCpus": 2_000_000_000,
            "NetworkMode": "s1_agent",
            "PidMode": "",
            "IpcMode": "private",
            "Devices": [],
        },
        "Mounts": [
            {"Type": "bind", "Source": "/srv/sessions/s1/workspace", "Destination": "/workspace"}
        ],
    }


def test_a_container_run_with_the_hardening_has_no_violation() -> None:
    assert violations(_inspected()) == []


def _set(path: str, value: object) -> dict[str, Any]:
    attrs = _inspected()
    *parents, key = path.split(".")
    node = attrs
    for parent in parents:
        node = node[parent]
    node[key] = value
    return attrs


def _mount(source: str, target: str) -> dict[str, Any]:
    attrs = _inspected()
    attrs["Mounts"].append({"Type": "bind", "Source": source, "Destination": target})
    return attrs


def _env(entry: str) -> dict[str, Any]:
    attrs = _inspected()
    attrs["Config"]["Env"].append(entry)
    return attrs


WEAKENED = [
    (_set("Config.User", ""), "runs as root"),
    (_set("Config.User", "root"), "runs as root"),
    (_set("Config.User", "0:0"), "runs as root"),
    (_set("Config.User", "10100"), "root's group"),
    (_set("Config.User", "10100:0"), "root's group"),
    (_set("Config.User", "10100:root"), "root's group"),
    (_set("HostConfig.Privileged", True), "privileged"),
    (_set("HostConfig.CapDrop", ["NET_RAW"]), "CapDrop lacks ALL"),
    (_set("HostConfig.CapDrop", None), "CapDrop lacks ALL"),
    (_set("HostConfig.CapAdd", ["SYS_ADMIN"]), "capabilities added"),
    (_set("HostConfig.SecurityOpt", []), "no-new-privileges not set"),
    (
        _set("HostConfig.SecurityOpt", ["no-new-privileges:true", "seccomp=unconfined"]),
        "unconfined",
    ),
    (_set("HostConfig.ReadonlyRootfs", False), "root filesystem is writable"),
    (_set("HostConfig.Sysctls", {}), "IPv6 not disabled"),
    (_set("HostConfig.PidsLimit", 0), "no pids limit"),
    (_set("HostConfig.PidsLimit", None), "no pids limit"),
    (_set("HostConfig.Memory", 0), "no memory limit"),
    (_set("HostConfig.NanoCpus", 0), "no CPU limit"),
    (_set("HostConfig.NetworkMode", "host"), "NetworkMode=host"),
    (_set("HostConfig.PidMode", "host"), "PidMode=host"),
    (_set("HostConfig.IpcMode", "host"), "IpcMode=host"),
    (_set("HostConfig.Devices", [{"PathOnHost": "/dev/kvm"}]), "host devices"),
    (_mount("/var/run/docker.sock", "/var/run/docker.sock"), "forbidden mount"),
    (_mount("/run/docker.sock", "/tmp/d"), "forbidden mount"),
    (_mount("/home/me/.ssh", "/home/agent/.ssh"), "forbidden mount"),
    (_mount("/tmp/ssh-XXXX/agent.123", "/ssh-agent"), "forbidden mount"),
    (_mount("/run/containerd/containerd.sock", "/c.sock"), "forbidden mount"),
    (_env("SSH_AUTH_SOCK=/ssh-agent"), "SSH agent variable"),
    (_env("DOCKER_HOST=unix:///var/run/docker.sock"), "DOCKER_HOST points at a local socket"),
]


@pytest.mark.parametrize(("attrs", "named"), WEAKENED)
def test_each_weakening_is_named(attrs: dict[str, Any], named: str) -> None:
    found = violations(attrs)
    assert len(found) == 1, found
    assert named in found[0]


def test_an_agent_running_as_anyone_but_the_workspace_owner_is_named() -> None:
    assert violations(_set("Config.User", "1000:1000"), user="1000:1000") == []
    (found,) = violations(_set("Config.User", "10100:10100"), user="1000:1000")
    assert "not as the workspace's owner 1000:1000" in found


def test_an_empty_inspect_fails_everything_that_must_be_set() -> None:
    assert len(violations({})) >= 8


def test_docker_host_over_tcp_to_the_sidecar_is_fine() -> None:
    assert violations(_env("DOCKER_HOST=tcp://sidecar:2375")) == []


def test_the_compose_service_drops_everything_limits_resources_and_has_only_the_agent_network() -> (
    None
):
    service = HARDENING.compose_service()
    assert service["user"] == "10100:10100"
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert service["privileged"] is False
    assert service["sysctls"]["net.ipv6.conf.all.disable_ipv6"] == "1"  # type: ignore[index]
    assert service["pids_limit"] == 512
    assert service["cpus"] == 2.0
    assert service["mem_limit"] == service["memswap_limit"] == 4 * 1024**3
    assert service["networks"] == ["agent"]
    assert service["volumes"] == [
        {
            "type": "bind",
            "source": "/srv/sessions/s1/workspace",
            "target": "/workspace",
            "read_only": False,
        }
    ]
    tmpfs = service["tmpfs"]
    assert [entry.split(":", 1)[0] for entry in tmpfs] == ["/tmp", "/home/agent"]  # type: ignore[attr-defined]
    assert all("nosuid" in entry for entry in tmpfs)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workspace": "/w", "uid": 0}, "root"),
        ({"workspace": "relative/dir"}, "absolute"),
        ({"workspace": "/var/run/docker.sock"}, "socket"),
        ({"workspace": "/home/me/.ssh"}, "socket or SSH"),
    ],
)
def test_settings_that_would_weaken_the_agent_are_refused(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(HardeningError, match=message):
        AgentHardening(**kwargs)


@pytest.mark.parametrize("limits", [{"pids": 0}, {"memory_bytes": -1}, {"cpus": 0}])
def test_limits_must_be_positive(limits: dict[str, Any]) -> None:
    with pytest.raises(HardeningError, match="positive"):
        Limits(**limits)


def test_the_agent_network_is_internal_without_a_host_gateway() -> None:
    agent = AGENT.compose()
    given = "set by ironcurtain run (session/subnets.py)"
    assert agent.pop("ipam") == {
        "config": [
            {
                "subnet": "${IRONCURTAIN_AGENT_SUBNET:?" + given + "}",
                "gateway": "${IRONCURTAIN_AGENT_GATEWAY:?" + given + "}",
            }
        ]
    }
    assert agent == {"driver": "bridge", "internal": True, "driver_opts": {INHIBIT_IPV4: "true"}}
    control = CONTROL.compose()
    control.pop("ipam")
    assert control == {"driver": "bridge", "internal": True}


def test_the_sidecar_never_routes_and_keeps_no_privileges() -> None:
    service = sidecar_compose_service()
    assert service["sysctls"]["net.ipv4.ip_forward"] == "0"  # type: ignore[index]
    assert service["sysctls"]["net.ipv6.conf.all.disable_ipv6"] == "1"  # type: ignore[index]
    assert service["cap_drop"] == ["ALL"]
    assert service["read_only"] is True


def test_a_docker_socket_of_roots_group_is_refused_saying_how_to_fix_it() -> None:
    """The socket proxy joins the socket's group (compose.yaml's group_add): never root's."""
    problem = socket_group_problem("/var/run/docker.sock", 0)
    assert problem is not None
    assert "chgrp docker /var/run/docker.sock" in problem
    assert socket_group_problem("/var/run/docker.sock", 105) is None  # control
