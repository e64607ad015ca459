"""The socket proxy image against the real engine: an access table of allowed and forbidden calls.

The test runs a visible sibling and a hidden container, each holding a secret in its environment,
and the proxy (read-only, no capabilities, socket mounted read-only) published on loopback.
Allowed reads must work — also for the real docker CLI and SDK (the controls) — and everything
else, in every path variant, must get the proxy's own 403 and leave the containers untouched.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import docker
import docker.errors
import docker.models.containers
import pytest

from .compose_service import run_kwargs
from .conftest import RUN_ID, TEST_LABELS
from .waiting import wait_healthy

SOCKET = "/var/run/docker.sock"
REFUSAL = b"refused by the IronCurtain socket proxy"
SHORT = RUN_ID[:8]
VISIBLE = f"ic-visible-{SHORT}"
HIDDEN = f"ic-hidden-{SHORT}"
BIG = f"ic-big-{SHORT}"
TRICKY = f"ic-tricky-{SHORT}"
PREFIXED = f"{VISIBLE}0"  # not declared; the engine's prefix matches would show it for VISIBLE
SECRETS = {
    name: f"sekrit-{secrets.token_hex(12)}" for name in (VISIBLE, HIDDEN, BIG, TRICKY, PREFIXED)
}
SHOWN = {VISIBLE, BIG, TRICKY}  # the declared visible containers
# Strings that could confuse a JSON walker: keys named Env inside values, escapes, brackets.
TRICKY_TEXT = {
    "fake-env": '"Env":["NOT_A_SECRET=1"]',
    "escapes": '\\"]}\\',
    "brackets": "]]}}{{[[",
    "unicode": "é☃\u0022",
    "Env": "a label named Env",
}


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    container: docker.models.containers.Container

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def call(proxy: Proxy, method: str, target: str, body: bytes | None = None) -> Answer:
    """One raw HTTP/1.1 request: the target and method are sent exactly as given."""
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return Answer(response.status, response.read())
    finally:
        conn.close()


def _sibling(client: docker.DockerClient, image: str, name: str, **kwargs: object):
    return client.containers.run(
        image,
        ["sleep", "600"],
        name=name,
        detach=True,
        labels=kwargs.pop("labels", TEST_LABELS),
        environment={"SIBLING_TOKEN": SECRETS[name], **kwargs.pop("environment", {})},
        **kwargs,
    )


@pytest.fixture(scope="module")
def siblings(
    docker_client: docker.DockerClient, image: Callable[[str], str]
) -> Iterator[dict[str, docker.models.containers.Container]]:
    made: dict[str, docker.models.containers.Container] = {}
    try:
        made[VISIBLE] = _sibling(docker_client, image("python"), VISIBLE)
        made[HIDDEN] = _sibling(docker_client, image("python"), HIDDEN)
        made[PREFIXED] = _sibling(docker_client, image("python"), PREFIXED)
        # An environment larger than the proxy's buffer: its inspect answer cannot be stripped.
        filler = {f"FILLER_{i}": "x" * 1000 for i in range(300)}
        made[BIG] = _sibling(docker_client, image("python"), BIG, environment=filler)
        made[TRICKY] = _sibling(
            docker_client,
            image("python"),
            TRICKY,
            labels={**TEST_LABELS, **TRICKY_TEXT},
            environment={"TRICKY": f'{SECRETS[TRICKY]}"],"Env":["{SECRETS[TRICKY]}'},
        )
        yield made
    finally:
        for container in made.values():
            container.remove(force=True)


def _run_proxy(
    client: docker.DockerClient, image: str, env: dict[str, str], **kwargs: object
) -> docker.models.containers.Container:
    return client.containers.run(
        image,
        detach=True,
        labels=TEST_LABELS,
        environment=env,
        **run_kwargs(
            "socket-proxy",
            {
                "IRONCURTAIN_DOCKER_SOCKET": SOCKET,
                "IRONCURTAIN_DOCKER_SOCKET_GID": str(os.stat(SOCKET).st_gid),
            },
        ),
        **kwargs,
    )


@pytest.fixture(scope="module")
def proxy(
    docker_client: docker.DockerClient,
    image: Callable[[str], str],
    siblings: dict[str, docker.models.containers.Container],
) -> Iterator[Proxy]:
    env = {
        "CONTAINERS": "1",
        "IMAGES": "1",
        "INFO": "1",
        "NETWORKS": "1",
        "VOLUMES": "1",
        "VISIBLE_CONTAINERS": ",".join(sorted(SHOWN)),
    }
    container = _run_proxy(
        docker_client, image("socket-proxy"), env, ports={"2375/tcp": ("127.0.0.1", None)}
    )
    try:
        wait_healthy(container)
        container.reload()
        port = int(container.ports["2375/tcp"][0]["HostPort"])
        yield Proxy("127.0.0.1", port, container)
    finally:
        container.remove(force=True)


# ---- controls: the allowed reads work, also for the real docker CLI and SDK -------------------

ALLOWED_READS = [
    ("HEAD", "/_ping"),
    ("GET", "/_ping"),
    ("GET", "/v1.41/_ping"),
    ("GET", "/v1.41/version"),
    ("GET", "/v1.41/info"),
    ("GET", "/v1.41/images/json"),
    ("GET", "/v1.41/networks"),
    ("GET", "/v1.41/volumes"),
    ("GET", "/v1.41/containers/json"),
    ("GET", "/v1.41/containers/json?all=0&filters=%7B%7D"),
    ("GET", f"/v1.41/containers/{VISIBLE}/json"),
    ("GET", f"/containers/{VISIBLE}/json"),
    ("GET", f"/v1.41/containers/{VISIBLE}/logs?stdout=1&stderr=1"),
    ("GET", f"/v1.41/containers/{VISIBLE}/top"),
    ("GET", f"/v1.41/containers/{VISIBLE}/stats?stream=0&one-shot=1"),
]


@pytest.mark.parametrize(("method", "target"), ALLOWED_READS)
def test_an_allowed_read_is_answered_by_the_engine(proxy: Proxy, method: str, target: str) -> None:
    answer = call(proxy, method, target)
    assert answer.status == 200, answer.body[:300]
    assert REFUSAL not in answer.body


def test_the_docker_cli_pings_lists_and_inspects_the_visible_container(proxy: Proxy) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run(
            ["docker", "-H", proxy.url, *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert cli("version", "--format", "{{.Server.APIVersion}}").strip()
    listed = cli("ps", "-a", "--format", "{{.Names}}").split()
    assert sorted(listed) == sorted(SHOWN)
    assert cli("inspect", "--format", "{{.Name}}", VISIBLE).strip() == f"/{VISIBLE}"
    assert cli("logs", VISIBLE) == ""  # the CLI reads logs by the full ID it got from inspect


def test_the_docker_sdk_reads_the_visible_container(proxy: Proxy) -> None:
    client = docker.DockerClient(base_url=proxy.url, version="1.41", timeout=10)
    try:
        assert client.ping()
        listed = {c["Names"][0]: c["Id"] for c in client.api.containers(all=True)}
        assert set(listed) == {f"/{name}" for name in SHOWN}
        by_id = client.containers.get(listed[f"/{VISIBLE}"])  # the SDK's models re-read by ID
        assert by_id.name == VISIBLE
        assert by_id.attrs["Config"]["Env"] == []
        assert client.api.logs(VISIBLE) == b""
        assert client.api.top(VISIBLE)["Processes"]
    finally:
        client.close()


def _filters(value: object) -> str:
    return quote(json.dumps(value), safe="")


def test_the_container_list_shows_only_visible_containers_even_when_asked_for_all(
    proxy: Proxy,
) -> None:
    names = {
        n
        for c in json.loads(call(proxy, "GET", "/v1.41/containers/json?all=1").body)
        for n in c["Names"]
    }
    assert names == {f"/{name}" for name in SHOWN}
    assert f"/{PREFIXED}" not in names


@pytest.mark.parametrize("spelled", [VISIBLE, f"/{VISIBLE}", f"^/{VISIBLE}$"])
def test_a_name_filter_on_the_list_matches_the_visible_name_exactly_not_by_prefix(
    proxy: Proxy, spelled: str
) -> None:
    target = "/v1.41/containers/json?all=1&filters=" + _filters({"name": [spelled]})
    answer = call(proxy, "GET", target)
    assert answer.status == 200, answer.body[:300]
    assert [c["Names"] for c in json.loads(answer.body)] == [[f"/{VISIBLE}"]]


def test_events_are_narrowed_to_visible_containers(
    proxy: Proxy, siblings: dict[str, docker.models.containers.Container]
) -> None:
    since = int(time.time()) - 600
    target = f"/v1.41/events?since={since}&until={int(time.time())}"
    answer = call(proxy, "GET", target)
    assert answer.status == 200
    events = [json.loads(line) for line in answer.body.splitlines() if line.strip()]
    names = {e.get("Actor", {}).get("Attributes", {}).get("name") for e in events}
    assert f"{VISIBLE}" in names  # control: the visible container's own start event is there
    assert HIDDEN not in names
    assert PREFIXED not in names  # the engine's container filter matches names by prefix
    assert {e["Type"] for e in events} == {"container"}


@pytest.mark.parametrize("spelled", [VISIBLE, "{visible_id}"])
def test_an_events_filter_on_a_visible_container_is_exact_not_by_prefix(
    proxy: Proxy, siblings: dict[str, docker.models.containers.Container], spelled: str
) -> None:
    since = int(time.time()) - 600
    wanted = _filters({"container": [_by_id(spelled, siblings)]})
    target = f"/v1.41/events?since={since}&until={int(time.time())}&filters={wanted}"
    answer = call(proxy, "GET", target)
    assert answer.status == 200, answer.body[:300]
    events = [json.loads(line) for line in answer.body.splitlines() if line.strip()]
    assert events  # control: the visible container's create and start
    assert {e["Actor"]["Attributes"]["name"] for e in events} == {VISIBLE}


def test_inspect_of_a_visible_container_strips_its_environment(
    proxy: Proxy, docker_client: docker.DockerClient
) -> None:
    direct = docker_client.api.inspect_container(VISIBLE)
    assert f"SIBLING_TOKEN={SECRETS[VISIBLE]}" in direct["Config"]["Env"]  # control
    answer = call(proxy, "GET", f"/v1.41/containers/{VISIBLE}/json")
    assert answer.status == 200
    through = json.loads(answer.body)
    assert through["Config"]["Env"] == []
    assert through["Id"] == direct["Id"]
    assert through["Config"]["Labels"] == direct["Config"]["Labels"]
    assert SECRETS[VISIBLE].encode() not in answer.body


def test_stripping_changes_nothing_but_env_even_with_tricky_strings(
    proxy: Proxy, docker_client: docker.DockerClient
) -> None:
    direct = docker_client.api.inspect_container(TRICKY)
    answer = call(proxy, "GET", f"/v1.41/containers/{TRICKY}/json")
    assert answer.status == 200
    through = json.loads(answer.body)
    assert through["Config"]["Env"] == []
    assert SECRETS[TRICKY].encode() not in answer.body
    assert through["Config"]["Labels"] == direct["Config"]["Labels"]
    for key in TRICKY_TEXT:
        assert through["Config"]["Labels"][key] == TRICKY_TEXT[key]
    direct["Config"]["Env"] = []
    for key in ("Id", "Name", "Path", "Args", "Config", "HostConfig", "Mounts", "Image"):
        assert through[key] == direct[key], key


def test_an_inspect_answer_too_large_to_strip_is_refused_not_passed_through(proxy: Proxy) -> None:
    answer = call(proxy, "GET", f"/v1.41/containers/{BIG}/json")
    assert answer.status == 502
    assert SECRETS[BIG].encode() not in answer.body
    assert b"FILLER_" not in answer.body


# ---- the forbidden table, each call in every path variant -------------------------------------

FORBIDDEN = [
    ("POST", "/containers/create"),
    ("POST", f"/containers/{VISIBLE}/start"),
    ("POST", f"/containers/{VISIBLE}/stop"),
    ("POST", f"/containers/{HIDDEN}/stop"),
    ("POST", f"/containers/{HIDDEN}/kill"),
    ("DELETE", f"/containers/{HIDDEN}"),
    ("POST", f"/containers/{VISIBLE}/exec"),
    ("POST", "/build"),
    ("POST", "/commit"),
    ("GET", f"/containers/{VISIBLE}/archive?path=/etc/passwd"),
    ("HEAD", f"/containers/{VISIBLE}/archive?path=/etc/passwd"),
    ("PUT", f"/containers/{VISIBLE}/archive?path=/tmp"),
    ("GET", f"/containers/{VISIBLE}/export"),
    ("POST", f"/containers/{VISIBLE}/attach?stream=1&stdout=1"),
    ("GET", f"/containers/{VISIBLE}/changes"),
    ("GET", f"/containers/{HIDDEN}/json"),
    ("GET", f"/containers/{HIDDEN}/logs?stdout=1"),
    ("GET", f"/containers/{HIDDEN}/top"),
    ("GET", "/system/df"),
    ("GET", "/images/ironcurtain/python:isolation/json"),
    ("GET", "/networks/bridge"),
]


def _variants(method: str, target: str) -> list[tuple[str, str]]:
    path, sep, query = target.partition("?")
    q = sep + query
    tail = path.removeprefix("/")
    first, _, rest = tail.partition("/")
    encoded = path.replace("/", "%2F")
    return [
        (method, f"/v1.41{path}{q}"),
        (method, f"{path}{q}"),
        (method.lower(), f"/v1.41{path}{q}"),
        (method, f"//v1.41{path}{q}"),
        (method, f"/v1.41/{first}//{rest}{q}"),
        (method, f"/v1.41/x/..{path}{q}"),
        (method, f"/v1.41/{first}/%2e%2e/{first}/{rest}{q}"),
        (method, f"/v1.41{encoded}{q}"),
        (method, f"/v1.41/{first}%2F{rest}{q}"),
        (method, f"/v1.41/{first}/{rest.replace('-', '%2D')}{q}"),
        (method, f"/v1.41/v1.41{path}{q}"),
        (method, f"http://docker/v1.41{path}{q}"),
    ]


CASES = [variant for m, t in FORBIDDEN for variant in _variants(m, t)]


@pytest.mark.parametrize(("method", "target"), CASES)
def test_a_forbidden_call_gets_the_proxys_403(proxy: Proxy, method: str, target: str) -> None:
    answer = call(proxy, method, target)
    assert answer.status == 403, answer.body[:300]
    assert REFUSAL in answer.body or method.upper() == "HEAD"  # a HEAD answer has no body


def _by_id(target: str, siblings: dict[str, docker.models.containers.Container]) -> str:
    if "{" not in target.split("?")[0] and "{visible_id}" not in target:
        return target
    return target.format(
        hidden_id=siblings[HIDDEN].id,
        hidden_prefix=siblings[HIDDEN].id[:12],
        visible_id=siblings[VISIBLE].id,
        visible_prefix=siblings[VISIBLE].id[:12],
    )


@pytest.mark.parametrize(
    "target",
    [
        "/v1.41/containers/{hidden_id}/json",
        "/v1.41/containers/{hidden_id}/logs?stdout=1",
        "/v1.41/containers/{hidden_id}/top",
        "/v1.41/containers/{hidden_prefix}/json",
        "/v1.41/containers/{visible_prefix}/json",
        "/v1.41/containers/{visible_id}/archive?path=/",
        "/v1.41/containers/{visible_id}/export",
        "/v1.41/containers/{visible_id}/changes",
        "/v1.41/containers/{visible_id}//json",
        "/v1.41/containers/" + "0" * 64 + "/json",
    ],
)
def test_a_container_id_is_served_only_when_the_engine_names_it_visible(
    proxy: Proxy, siblings: dict[str, docker.models.containers.Container], target: str
) -> None:
    answer = call(proxy, "GET", _by_id(target, siblings))
    assert answer.status == 403
    assert REFUSAL in answer.body


@pytest.mark.parametrize(
    "target",
    [
        "/v1.41/containers/{visible_id}/json",
        "/v1.41/containers/{visible_id}/logs?stdout=1",
        "/v1.41/containers/{visible_id}/top",
    ],
)
def test_the_full_id_of_a_visible_container_is_served(
    proxy: Proxy, siblings: dict[str, docker.models.containers.Container], target: str
) -> None:
    answer = call(proxy, "GET", _by_id(target, siblings))
    assert answer.status == 200
    assert SECRETS[VISIBLE].encode() not in answer.body


def _body(target: str, image: str) -> bytes | None:
    """A body that would work if the call got through: a real create / exec request."""
    if "/containers/create" in target:
        config = {"Image": image, "Cmd": ["true"], "Labels": {**TEST_LABELS, "smuggled": "1"}}
        return json.dumps(config).encode()
    if target.split("?")[0].endswith("/exec"):
        return json.dumps({"Cmd": ["true"], "AttachStdout": True}).encode()
    return None


def test_forbidden_calls_changed_nothing(
    proxy: Proxy,
    docker_client: docker.DockerClient,
    siblings: dict[str, docker.models.containers.Container],
    image: Callable[[str], str],
) -> None:
    for method, target in CASES:
        assert call(proxy, method, target, _body(target, image("python"))).status == 403
    for container in siblings.values():
        container.reload()
        assert container.status == "running", container.name
        assert not container.attrs["ExecIDs"], container.name
    smuggled = docker_client.containers.list(all=True, filters={"label": "smuggled=1"})
    assert smuggled == []
    # control: the same body straight to the engine does create a container
    direct = docker_client.api.create_container(
        image("python"), ["true"], labels={**TEST_LABELS, "smuggled": "1"}
    )
    try:
        assert docker_client.containers.list(all=True, filters={"label": "smuggled=1"})
    finally:
        docker_client.api.remove_container(direct["Id"], force=True)


def test_no_secret_of_any_container_appears_in_any_answer(proxy: Proxy) -> None:
    bodies = [call(proxy, m, t).body for m, t in ALLOWED_READS + CASES]
    for name in SHOWN:
        bodies.append(call(proxy, "GET", f"/v1.41/containers/{name}/json").body)
    for secret in SECRETS.values():
        assert all(secret.encode() not in body for body in bodies)


def test_the_proxy_runs_unprivileged_with_the_socket_read_only(proxy: Proxy) -> None:
    proxy.container.reload()
    attrs = proxy.container.attrs
    assert attrs["Config"]["User"] == "ironcurtain"
    mount = next(m for m in attrs["Mounts"] if m["Destination"] == "/var/run/docker.sock")
    assert mount["RW"] is False
    status = proxy.container.exec_run(["cat", "/proc/1/status"]).output.decode()
    cap_eff = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    assert int(cap_eff.split()[1], 16) == 0


@pytest.mark.parametrize("switch", ["EXEC", "BUILD", "COMMIT", "SYSTEM", "SECRETS"])
def test_a_never_served_switch_stops_the_proxy_before_it_listens(
    docker_client: docker.DockerClient, image: Callable[[str], str], switch: str
) -> None:
    container = _run_proxy(docker_client, image("socket-proxy"), {switch: "1"})
    try:
        result = container.wait(timeout=30)
        logs = container.logs().decode()
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 64
    assert f"refusing to start: {switch}" in logs


def test_each_request_on_a_kept_alive_connection_is_checked(proxy: Proxy) -> None:
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=10)
    try:
        statuses = []
        for target in ("/v1.41/_ping", f"/v1.41/containers/{HIDDEN}/json", "/v1.41/version"):
            conn.request("GET", target)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        conn.close()
    assert statuses == [200, 403, 200]


def test_a_pipelined_forbidden_request_is_refused(proxy: Proxy) -> None:
    requests = (
        b"GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
        + f"GET /v1.41/containers/{HIDDEN}/json HTTP/1.1\r\nHost: docker\r\n".encode()
        + b"Connection: close\r\n\r\n"
    )
    with socket.create_connection((proxy.host, proxy.port), timeout=10) as conn:
        conn.sendall(requests)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    assert statuses == [b"200", b"403"]
    assert SECRETS[HIDDEN].encode() not in received


# ---- queries and API versions: every answer of this table is refused and carries no secret -----

LONG = "x" * 60_000
QUERIES_REFUSED = [
    # (target, status): the engine runs `ps ps_args` on the host; `aeww` prints environments
    (f"/v1.41/containers/{VISIBLE}/top?ps_args=aeww", 403),
    (f"/containers/{VISIBLE}/top?ps_args=aeww", 403),
    (f"/v1.41/containers/{VISIBLE}/top?ps_args=-eo%20pid,args,env", 403),
    (f"/v1.41/containers/{VISIBLE}/top?ps_%61rgs=aeww", 403),
    (f"/v1.41/containers/{VISIBLE}/top?%70s_args=aeww", 403),
    (f"/v1.41/containers/{VISIBLE}/top?PS_ARGS=aeww", 403),
    (f"/v1.41/containers/{VISIBLE}/top?x=1;ps_args=aeww", 403),
    (f"/v1.41/containers/{VISIBLE}/top?&ps_args=aeww", 403),
    (f"/v1.41/containers/{VISIBLE}/top?=1&ps_args=aeww", 403),
    (f"/v1.41/containers/{VISIBLE}/top?ps_args=ef&ps_args=aeww", 403),
    ("/v1.41/containers/{visible_id}/top?ps_args=aeww", 403),
    (f"/v1.41/containers/{VISIBLE}/logs?stdout=1&details=1", 403),
    (f"/v1.41/containers/{VISIBLE}/logs?stdout=1&stdout=0", 403),
    (f"/v1.41/containers/{VISIBLE}/json?env=1", 403),
    # API versions below a section's floor widen answers (1.27 lists every network's endpoints)
    ("/v1.27/networks", 403),
    ("/v1.12/networks", 403),
    (f"/v1.24/containers/{VISIBLE}/json", 403),
    ("/v1.24/containers/json?all=1", 403),
    ("/v1.24/events?since=0&until=1", 403),
    ("/v1.42/_ping", 403),
    ("/v1.99/version", 403),
    # filters that widen or name what is hidden
    ("/v1.41/containers/json?filters=" + _filters({"name": ["."]}), 403),
    ("/v1.41/containers/json?filters=" + _filters({"name": [VISIBLE[:-1]]}), 403),
    ("/v1.41/containers/json?filters=" + _filters({"name": [PREFIXED]}), 403),
    ("/v1.41/containers/json?filters=" + _filters({"name": []}), 403),
    ("/v1.41/containers/json?before=" + HIDDEN, 403),
    ("/v1.41/containers/json?filters={}&filters=" + _filters({"name": ["."]}), 403),
    ("/v1.41/events?filters=" + _filters({"container": [VISIBLE[:-1]]}), 403),
    ("/v1.41/events?filters=" + _filters({"container": [PREFIXED]}), 403),
    ("/v1.41/events?filters=" + _filters({"type": ["network"]}), 403),
    ("/v1.41/events?filters=" + _filters({"container": []}), 403),
    # size: a 60 KB target is never forwarded
    (f"/v1.41/containers/{VISIBLE}/logs?stdout=1&x={LONG}", 414),
    (f"/v1.41/containers/json?filters=%7B%22label%22%3A%5B%22{LONG}%22%5D%7D", 414),
    (f"/v1.41/{LONG}", 414),
]


@pytest.mark.parametrize(("target", "status"), QUERIES_REFUSED)
def test_a_query_or_version_outside_the_allowlist_is_refused_naming_it(
    proxy: Proxy, siblings: dict[str, docker.models.containers.Container], target: str, status: int
) -> None:
    answer = call(proxy, "GET", _by_id(target, siblings))
    assert answer.status == status, answer.body[:300]
    assert REFUSAL in answer.body
    for secret in SECRETS.values():
        assert secret.encode() not in answer.body
    if target.endswith("/top?ps_args=aeww"):
        assert b'"ps_args"' in answer.body  # the refusal names the parameter


def test_control_the_engine_itself_prints_environments_for_ps_args_and_old_versions(
    docker_client: docker.DockerClient,
) -> None:
    """The table above guards something real: straight to the engine both calls leak."""
    top = docker_client.api.top(VISIBLE, ps_args="aeww")
    assert SECRETS[VISIBLE] in json.dumps(top)
    old = docker_client.api.get(f"{docker_client.api.base_url}/v1.27/networks").json()
    endpoints = {e["Name"] for n in old for e in (n.get("Containers") or {}).values()}
    assert HIDDEN in endpoints


@pytest.mark.parametrize(
    "target",
    [
        f"/v1.41/containers/{VISIBLE}/logs?stdout=1&stderr=1&tail=all&timestamps=0",
        f"/v1.41/containers/{VISIBLE}/logs?%73tdout=1",
        f"/v1.41/containers/{VISIBLE}/top",
        f"/v1.41/containers/{VISIBLE}/json?size=1",
        "/v1.41/containers/json?all=1&limit=-1&size=0&trunc_cmd=0",
        "/v1.41/containers/json?filters=" + _filters({"status": ["running"]}),
        "/v1.41/containers/json?filters=" + _filters({"label": {"ironcurtain.test": True}}),
        "/v1.28/networks",
        "/v1.25/version",
        "/version",
    ],
)
def test_control_allowed_queries_and_versions_are_answered(proxy: Proxy, target: str) -> None:
    answer = call(proxy, "GET", target)
    assert answer.status == 200, answer.body[:300]
    for secret in SECRETS.values():
        assert secret.encode() not in answer.body


def test_no_secret_appears_in_any_answer_of_the_query_table(
    proxy: Proxy, siblings: dict[str, docker.models.containers.Container]
) -> None:
    targets = [_by_id(t, siblings) for t, _ in QUERIES_REFUSED]
    targets += [f"/v1.41/containers/{VISIBLE}/json", f"/v1.41/containers/{VISIBLE}/logs?stdout=1"]
    bodies = [call(proxy, "GET", target).body for target in targets]
    for secret in SECRETS.values():
        assert all(secret.encode() not in body for body in bodies)
