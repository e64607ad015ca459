"""`ironcurtain run`: one agent session, start to summary, torn down whatever happens.

images -> CA -> shared infra -> session folder (fake keys, secrets, settings, orientation) ->
compose up, until the doors answer from inside the agent -> isolation checks from inside the
agent -> the task (output streamed, escalation notices shown) -> teardown (in `finally`: Ctrl-C,
SIGTERM, crashes, failed starts) -> summary.json. See docs/session.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import docker
import docker.errors
import docker.models.containers
import yaml

from ..agents.adapter import AgentAdapter
from ..agents.builtin_budget import Budgets
from ..agents.claude_code import ClaudeCode
from ..agents.registry import adapter_for
from ..audit import Anchor
from ..audit import key_files as audit_keys
from ..audit.anchor import checkpoints_path, key_path
from ..config import prices as user_prices
from ..config.settings import SettingsError, user_config_path, user_table
from ..config.settings import load as settings_load
from ..home import Home, HomeMissing, locate
from ..images import project_build
from ..images.build import BuildError, BuildSettings, ImageBuilder
from ..images.catalog import CatalogError, image_ref
from ..keystore import KeyStore, KeyStoreError
from ..mcpproxy.config import BackendSpec, ConfigError
from ..mcpproxy.rooms import dump_spec, room_specs
from ..mitm import ca, providers
from ..mitm.fake_keys import new_fake_key
from ..policy import PolicyError
from ..registrar.client import Registrar, Team
from ..shared.command import compose_files as shared_compose_files
from ..shared.command import shared_environ
from ..shared.files import SharedFiles
from ..state import state_dir
from . import (
    checks,
    hardening,
    leases,
    plan,
    reclaim,
    rooms,
    runtime,
    siblings,
    subnets,
    subscription,
    summary,
    terminal,
    workspace,
)
from .compose import Compose, ComposeError
from .compose import missing as compose_missing
from .layout import SessionLayout
from .naming import PROJECT_LABEL, session_name
from .networks import SESSION_NETWORKS

if TYPE_CHECKING:  # Redis loads when a session is made, not with the CLI
    import redis

    from ..escalation.watcher import Watcher

MITM_UID = 10001
SIBLINGS_FILE = "siblings.yaml"  # in the repository's .ironcurtain/ (trusted like its image)
LOCAL_REDIS_URL = "rediss://redis:6379/0"  # the stack's Redis by its certificate's name
SESSION_IMAGES = ("python", "mcp-proxy", "sidecar", "socket-proxy", "redis")
SERVICES = ("agent", "sidecar", "mcp-proxy", "mitm-proxy", "socket-proxy")
START_TIMEOUT_S = 120.0
READY_ROUND_S = 3.0  # one probe waits this long for the doors; between rounds: stopped ones?
EXIT_OK, EXIT_AGENT_FAILED, EXIT_REFUSED, EXIT_ISOLATION, EXIT_INTERRUPTED = 0, 1, 2, 4, 130

Say = Callable[[str], None]


class Refused(RuntimeError):
    """A prerequisite is missing or a setting is unsafe: no session was started."""


class Interrupted(BaseException):
    """SIGTERM (Ctrl-C is KeyboardInterrupt): stop, tear down, report."""


class SessionFailed(RuntimeError):
    """Something ended the session early (a proxy died, the agent crashed)."""


@dataclass(frozen=True, slots=True)
class Options:
    task: str | None
    agent: str = "claude-code"
    workspace: Path = field(default_factory=Path.cwd)
    policy: Path | None = None  # default: <home>/policy
    session_id: str | None = None
    compose_files: tuple[Path, ...] = ()  # extra compose files (tests: a fake vendor)
    upstreams: tuple[plan.Upstream, ...] = ()
    escalation_timeout_s: float = 300.0
    build_images: bool = True
    siblings: Path | None = None  # sibling services file (session/siblings.py)
    # the MITM's limits the user set ([budget] in the user config); absent: its defaults
    budget: Mapping[str, float | int | None] = field(default_factory=dict)
    budgets: Budgets | None = None  # the builtin agent's (agents/builtin_budget.py)


def _home() -> Home:
    try:
        return locate()
    except HomeMissing as exc:
        raise Refused(str(exc)) from None


def mitm_user() -> str:
    """Root hands the MITM its files as uid 10001; anyone else runs it as themselves, the owner
    of the files (a user cannot give files away)."""
    if workspace.is_root():
        return f"{MITM_UID}:{MITM_UID}"
    return f"{os.getuid()}:{os.getgid()}"


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises Interrupted in the main thread, so `finally` blocks tear down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class Session:
    """One session's parts and its steps; `run()` is the whole lifecycle."""

    def __init__(self, options: Options, say: Say = print, environ: dict[str, str] | None = None):
        self.options = options
        self.say = say
        self.environ = dict(os.environ if environ is None else environ)
        self.home = _home()  # compose files, image contexts, default policy
        self.repo = self.home.root
        self.adapter: AgentAdapter = adapter_for(options.agent)
        if options.budgets is not None:  # only the builtin agent has budgets of its own
            self.adapter = dataclasses.replace(self.adapter, budgets=options.budgets)  # type: ignore[type-var]
        self.state = state_dir(self.environ)
        # Named after the workspace: approvers see which repository asks, wherever we are installed.
        self.name = session_name(options.workspace, options.session_id)
        self.layout = SessionLayout.for_session(self.state, self.name)
        self.tag = self._build_settings().image_tag
        self.client = docker.from_env()
        self.compose: Compose | None = None
        self.plan: plan.Plan | None = None
        self.started = time.monotonic()
        self.outcome = "not started"
        self.answer: str | None = None
        self.lines: list[str] = []
        self.timings: dict[str, float] = {}  # phase -> seconds (prepare, up, check, teardown)
        self.services: tuple[str, ...] = SERVICES  # plus `siblings` when declared
        # Each server's room starts on demand, from a thread that lives with the session.
        self.rooms: tuple[BackendSpec, ...] = ()
        self._waker = threading.Thread(target=self._wake_rooms, name="room-waker", daemon=True)
        self._stop_waking = threading.Event()
        self.rooms_up: set[str] = set()  # rooms started (on demand)
        self.room_errors: dict[str, str] = {}
        self.runtimes: runtime.Choice | None = None  # chosen in prepare (session/runtime.py)
        # The host copies each audit log's head into anchor/ (no container can write there).
        self._anchors = tuple(
            Anchor(log, checkpoints_path(self.layout.anchor, log)) for log in self._audit_logs()
        )
        self._anchorer = threading.Thread(target=self._anchor, name="audit-anchor", daemon=True)
        self._stop_anchoring = threading.Event()
        self.subscription: subscription.Subscription | None = None  # a Claude subscription login
        self._dropping = threading.Lock()

    # -- the lifecycle ---------------------------------------------------------------------

    def run(self) -> int:
        code = EXIT_OK
        try:
            with _sigterm_interrupts():
                try:
                    self.prepare()
                    self.up()
                    self.check_isolation()
                    code = self.run_agent()
                finally:
                    self.teardown()
        except Refused as exc:
            self.outcome = f"refused: {exc}"
            code = EXIT_REFUSED
        except checks.IsolationError as exc:
            self.outcome = f"aborted, isolation does not hold: {exc}"
            code = EXIT_ISOLATION
        except (KeyboardInterrupt, Interrupted) as exc:
            self.outcome = f"interrupted ({exc or 'Ctrl-C'})"
            code = EXIT_INTERRUPTED
        except (ComposeError, SessionFailed) as exc:
            self.outcome = f"failed: {exc}"
            code = EXIT_AGENT_FAILED
        self.report(code)
        return code

    def prepare(self) -> None:
        began = time.monotonic()
        try:
            self._prepare()
        finally:
            self.timings["prepare"] = time.monotonic() - began

    def _prepare(self) -> None:
        self.say(
            f"run: session {self.name.session_id} ({self.name.project}), agent {self.adapter.name}"
        )
        if self.layout.root.exists():
            raise Refused(f"{self.layout.root} exists already (session id reused?)")
        policy_dir = (self.options.policy or self.repo / "policy").resolve()
        keys = KeyStore(self.state / "keys")
        try:
            self.subscription = self._subscription(keys)
            needed = [p for p in self.adapter.providers if p not in self._subscribed()]
            real_keys = {p: keys.checked_path(p).read_text().strip() for p in needed}
        except KeyStoreError as exc:
            raise Refused(str(exc)) from None
        ca_dir = self._ensure_ca()
        variables = {
            "policy_dir": str(policy_dir),
            "audit_dir": str(self.layout.audit),
            "state_dir": str(self.state),
            "ca_dir": str(ca_dir),
            "secrets_dir": str(self.layout.secrets),
        }
        # Cheap refusals first: a bad workspace or policy says so before images or shared infra.
        try:
            work = workspace.check(self.options.workspace, policy_dir / "policy.yaml", variables)
            owner = workspace.owner(work)
        except workspace.WorkspaceError as exc:
            raise Refused(str(exc)) from None
        except PolicyError as exc:
            raise Refused(f"the policy is refused: {exc}") from None
        self._config_outside(work)
        servers = policy_dir / "servers.yaml"
        try:
            self.rooms = room_specs(yaml.safe_load(servers.read_text()), str(servers))
        except (OSError, yaml.YAMLError, ConfigError) as exc:
            raise Refused(f"the backends file is refused: {exc}") from None
        found = self._siblings(work)
        chosen = self._runtimes()
        priced = self._prices()
        problem = compose_missing()
        if problem:
            raise Refused(
                f"docker compose does not run for this user ({problem}): install the Compose v2 "
                "plugin for this user (in a checkout: make engine)"
            )
        leased = self._lease_subnets()
        if self.options.build_images:
            self._ensure_images()
        agent_image = self._project_image(work) or image_ref(self.adapter.image, self.tag)
        shared = self._ensure_shared()
        self.layout.create()
        self._created = True
        socket_path = self.environ.get("IRONCURTAIN_DOCKER_SOCKET", "/var/run/docker.sock")
        try:
            socket_gid = os.stat(socket_path).st_gid
        except OSError as exc:
            raise Refused(f"the Docker socket {socket_path}: {exc}") from None
        problem = hardening.socket_group_problem(socket_path, socket_gid)
        if problem is not None:
            raise Refused(problem)
        self.plan = plan.Plan(
            name=self.name,
            layout=self.layout,
            agent=self.adapter.name,
            agent_image=agent_image,
            image_tag=self.tag,
            workspace=work,
            policy_dir=policy_dir,
            task=self.options.task or "",
            owner=owner,
            mitm_user=mitm_user(),
            docker_socket=socket_path,
            docker_socket_gid=socket_gid,
            shared_network=shared["IRONCURTAIN_SHARED_NETWORK"],
            redis_url=self._team_redis_url or LOCAL_REDIS_URL,
            test_run=self.environ.get("IRONCURTAIN_TEST_RUN", ""),
            escalation_timeout_s=self.options.escalation_timeout_s,
            upstreams=self.options.upstreams,
            visible_containers=siblings.visible(found),
            subnets=leased,
            agent_runtime=chosen.agent,
            room_runtime=chosen.rooms,
            prices=priced,
            budget=dict(self.options.budget),
        )
        self._write_files(real_keys, ca_dir, Path(shared["IRONCURTAIN_SHARED_DIR"]))
        self._session_user(Path(shared["IRONCURTAIN_SHARED_DIR"]))
        self._watch_budget()  # before any container can write as the session's user
        extra: tuple[Path, ...] = ()
        if self.rooms:
            override = self.layout.root / "compose.rooms.yaml"
            _write_public(override, yaml.safe_dump(rooms.compose_override(self.rooms)))
            extra = (override,)
        if found:
            override = self.layout.root / "compose.siblings.yaml"
            _write_public(override, yaml.safe_dump(siblings.compose_override(found)))
            extra = (*extra, override)
            self.services = (*SERVICES, siblings.SERVICE)
        self.compose = Compose(
            self.name.project,
            files=(self.repo / "compose.yaml", *self.options.compose_files, *extra),
            env={**self.environ, **self.plan.compose_env()},
            cwd=self.repo,
        )

    def _runtimes(self) -> runtime.Choice:
        """The runtimes this session's containers run under: the setting against the engine's
        registered runtimes (asked once); a required runsc the engine lacks refuses the session."""
        try:
            setting = settings_load(self.environ, self.repo if self.home.checkout else None).runtime
            found = runtime.registered(self.client.info().get("Runtimes"))
            self.runtimes = runtime.choose(setting, found)
        except (runtime.RuntimeRefused, SettingsError) as exc:
            raise Refused(str(exc)) from None
        except docker.errors.DockerException as exc:
            raise Refused(f"the Docker engine did not say which runtimes it has: {exc}") from None
        self.say(f"run: {self.runtimes.describe()}")
        return self.runtimes

    def _subscription(self, keys: KeyStore) -> subscription.Subscription | None:
        """A stored subscription login (`ironcurtain login claude`) for an agent that takes one."""
        if not isinstance(self.adapter, ClaudeCode):  # the one agent that takes a subscription
            return None
        known = providers.builtin()
        for name in self.adapter.providers:
            found = subscription.load(keys, known[name], self.options.upstreams)
            if found is not None:
                self.adapter = dataclasses.replace(self.adapter, subscription=True)
                self.say(f"run: {name} through your subscription login (the agent: a fake token)")
                return found
        return None

    def _door_requests(self) -> dict[str, list[Any]]:
        # The MITM door is probed with a CONNECT to the agent's own LLM host (Codex: OpenAI's).
        host = providers.builtin()[self.adapter.providers[0]].hosts[0]
        return checks.door_requests(plan.MCP_PORT, plan.MITM_PORT, plan.DOCKER_PORT, host)

    def _subscribed(self) -> frozenset[str]:
        return frozenset({self.subscription.provider.name} if self.subscription else ())

    def _config_outside(self, work: Path) -> None:
        """The user config (budgets, prices, the default agent) must not be the agent's to
        write: refused when it, or what its symlink names, lies in the workspace."""
        config = user_config_path(self.environ)
        if config is None:
            return
        for place in (config.parent.resolve(), config.resolve()):
            if place.is_relative_to(work):
                raise Refused(
                    f"the user config {config} lies in the workspace {work} (as {place}), where "
                    "the agent can write: keep it outside"
                )

    def _prices(self) -> user_prices.Table:
        """The user's own model prices (`[[prices.PROVIDER]]`), checked before anything starts."""
        try:
            raw, where = user_table(self.environ, "prices")
            if raw is None:
                return {}
            return user_prices.parse(raw, frozenset(providers.builtin()), f"{where}: prices")
        except (user_prices.PriceError, SettingsError) as exc:
            raise Refused(f"the user config is refused: {exc}") from None

    def _build_settings(self) -> BuildSettings:
        return BuildSettings.from_environ(self.repo, self.environ, checkout=self.home.checkout)

    def _lease_subnets(self) -> dict[str, str]:
        """A subnet of IronCurtain's pool for each session network, leased until teardown;
        refused (nothing started) when the pool has none left. Networks that stopped sessions
        left behind are reclaimed first."""
        try:
            pool = leases.pool_from(self.environ)
        except subnets.PoolError as exc:
            raise Refused(str(exc)) from None
        sweeper = reclaim.Sweeper(self.client, pool)
        group = leases.socket_group(self.environ)
        held = leases.Leases(leases.lease_dir(self.environ), pool, sweeper, group=group)
        try:
            chosen = held.take(self.name.project, len(SESSION_NETWORKS))
        except subnets.Exhausted as exc:
            raise Refused(f"no addresses for the session's networks: {exc}") from None
        except leases.LeaseError as exc:
            raise Refused(str(exc)) from None
        finally:
            if sweeper.removed:
                removed = ", ".join(sweeper.removed)
                self.say(f"run: reclaimed the networks of stopped sessions: {removed}")
            for problem in sweeper.problems:
                self.say(f"run: could not reclaim {problem}")
        self._leases = held
        return {n.role: str(s) for n, s in zip(SESSION_NETWORKS, chosen, strict=True)}

    def up(self) -> None:
        """Containers started, then ready: every door answers from inside the agent.

        The agent's first process is the probe (checks.startup_program): it waits for the doors
        and tries the host canary (opened here, before compose up) via every gateway address
        while compose is still starting the rest, so the canary's wait overlaps the start.
        Readiness is asked of the doors themselves, through the sidecar, rather than of Docker
        healthchecks: on Docker 20.10 a healthcheck cannot run faster at start than later, and
        one exec per second per container cost a quarter of a core per session for its whole life.
        """
        assert self.compose is not None
        assert self.plan is not None
        self.outcome = "starting"
        began = time.monotonic()
        canary = checks.Canary()
        try:
            canaries = self._expected_gateways()
            spec = {
                "doors": self._door_requests(),
                "canaries": [[address, canary.port] for address in canaries],
                "wait_s": START_TIMEOUT_S,
            }
            _write_public(self.layout.agent / checks.STARTUP_FILE, checks.startup_program(spec))
            # Not the rooms: each starts when the proxy first asks for it (_wake_rooms).
            held = [rooms.service(s.name) for s in self.rooms]
            self.compose.up(timeout_s=START_TIMEOUT_S, wait=False, later=held)
            self.timings["compose_up"] = time.monotonic() - began
            self._waker.start()
            self._anchorer.start()
            output = self._startup_output(began + START_TIMEOUT_S)
        except ComposeError as exc:
            raise SessionFailed(f"the session did not start: {exc}\n{self._logs()}") from None
        finally:
            canary.close()
        try:
            result = checks.parse_probe(output, canary.hits)
        except checks.IsolationError as exc:
            raise SessionFailed(f"the session did not start: {exc}\n{self._logs()}") from None
        doors = [p for p in result.problems() if p.startswith("door ")]
        if doors:
            raise SessionFailed(f"the session did not start: {'; '.join(doors)}\n{self._logs()}")
        self._startup = (result, frozenset(canaries))
        self.timings["up"] = time.monotonic() - began
        self.say(f"run: containers up, doors answering in {self.timings['up']:.1f}s")

    def _startup_output(self, deadline: float) -> str:
        """The agent's start-up probe's output (its container log), once it printed its line;
        a container of the session that stopped meanwhile ends the start at once."""
        agent = self._container("agent")
        lines: list[str] = []
        done = threading.Event()
        stream = agent.logs(stream=True, follow=True, stdout=True, stderr=True)

        def follow() -> None:
            buffer = b""
            try:
                for chunk in stream:
                    buffer += chunk
                    if b'"doors"' in buffer and buffer.endswith(b"\n"):
                        break
            except docker.errors.DockerException:
                pass
            finally:
                lines.append(buffer.decode(errors="replace"))
                done.set()

        reader = threading.Thread(target=follow, name="startup-log", daemon=True)
        reader.start()
        try:
            while not done.wait(READY_ROUND_S):
                if self._ended:
                    raise SessionFailed(self._ended)
                stopped = self._stopped()
                if stopped:
                    raise SessionFailed(
                        f"the session did not start: {', '.join(stopped)} stopped\n{self._logs()}"
                    )
                if time.monotonic() >= deadline:
                    raise SessionFailed(
                        f"the session did not start in {START_TIMEOUT_S:.0f}s\n{self._logs()}"
                    )
        finally:
            stream.close()  # shuts the socket down: a reader still waiting returns
            reader.join(timeout=5)
            _close_response(stream)
        return "".join(lines)

    def _stopped(self) -> list[str]:
        """The session's services whose container is not running (exited, dead, gone)."""
        states = {
            c.labels.get("com.docker.compose.service"): c.status
            for c in self.client.containers.list(
                all=True, filters={"label": f"{PROJECT_LABEL}={self.name.project}"}
            )
        }
        return sorted(s for s in self.services if states.get(s) != "running")

    def _siblings(self, work: Path) -> tuple[siblings.Sibling, ...]:
        """The declared sibling services, refused unless each network exists, is not one of
        IronCurtain's, and each docker-visible service is a container on it."""
        path = self.options.siblings
        doors = (plan.MCP_PORT, plan.MITM_PORT, plan.DOCKER_PORT)
        try:
            if path is None:
                found = self._project_siblings(work, doors)
            else:
                path = path.resolve()
                if path.is_relative_to(work):
                    raise Refused(
                        f"the sibling services file {path} is inside the workspace, where the "
                        "agent can write: keep it outside (or in .ironcurtain/, trusted)"
                    )
                found = siblings.load(path, doors)
        except siblings.SiblingError as exc:
            raise Refused(str(exc)) from None
        environ = shared_environ(self.environ)
        shared = environ.get("IRONCURTAIN_SHARED_NETWORK", "")
        shared_project = environ.get("IRONCURTAIN_SHARED_PROJECT", "ironcurtain-shared")
        for sibling in found:
            try:
                network = self.client.networks.get(sibling.network)
                if network.name != sibling.network:  # the engine also matches ID prefixes
                    raise docker.errors.NotFound(sibling.network)
            except docker.errors.NotFound:
                raise Refused(
                    f"sibling {sibling.name!r}: the network {sibling.network!r} does not exist"
                ) from None
            labels = network.attrs.get("Labels") or {}
            ours = "org.ironcurtain.part" in labels or "org.ironcurtain.session" in labels
            if (
                ours
                or network.name in (shared, "bridge", "host", "none")
                or labels.get(PROJECT_LABEL) == shared_project
            ):
                raise Refused(
                    f"sibling {sibling.name!r}: {sibling.network!r} is not a team network "
                    "(IronCurtain's own, or Docker's default)"
                )
            attached = {c.get("Name") for c in (network.attrs.get("Containers") or {}).values()}
            if sibling.docker_visible and sibling.host not in attached:
                raise Refused(
                    f"sibling {sibling.name!r}: docker_visible needs a container named "
                    f"{sibling.host!r} on {sibling.network!r}"
                )
        return found

    def check_isolation(self) -> None:
        """The agent container hardened, the doors answering and no gateway reaching the host.

        The first call after `up` reads the start-up probe's answer when it tried every gateway
        the engine now reports (the canary closed since: its hits were counted); any other call,
        or a gateway it did not try, probes again from inside the running agent."""
        assert self.compose is not None
        began = time.monotonic()
        agent = self._container("agent")
        assert self.plan is not None
        checks.check_hardening(agent.attrs, self.plan.owner.user)
        if self.runtimes is not None:  # what ran, not what was asked for
            wrong = runtime.mismatch(agent.attrs, self.runtimes.agent)
            if wrong is not None:
                raise checks.IsolationError(f"the agent container: {wrong}")
        gateways = self._gateways()
        startup, self._startup = self._startup, None
        if startup is not None and set(gateways) <= startup[1]:
            result = startup[0]
        else:
            with checks.Canary() as canary:
                spec = {
                    "doors": self._door_requests(),
                    "canaries": [[address, canary.port] for address in gateways],
                }
                output = _exec(agent, checks.probe_argv(spec))
                result = checks.parse_probe(output, canary.hits)
        problems = result.problems()
        self.timings["check"] = time.monotonic() - began
        if problems:
            raise checks.IsolationError("; ".join(problems))
        self.say(
            f"run: isolation holds (doors answer; {len(gateways)} gateway addresses unreachable)"
        )

    def run_agent(self) -> int:
        assert self.compose is not None
        assert self.plan is not None
        if self._ended:  # over its Redis budget while starting
            raise SessionFailed(self._ended)
        task = self.options.task
        if task is None:
            return self._run_interactive()
        self.outcome = "running"
        self.agent_started_at = time.time()
        stop = threading.Event()
        notices = threading.Thread(target=self._follow_notices, args=(stop,), daemon=True)
        notices.start()
        proc = self.compose.exec_process("agent", self.adapter.oneshot_command(task))
        watcher = threading.Thread(target=self._watch_proxies, args=(proc, stop), daemon=True)
        watcher.start()
        log_path = self.layout.root / "agent-output.log"
        try:
            assert proc.stdout is not None
            with log_path.open("w") as log:
                for line in proc.stdout:
                    log.write(line)
                    self.lines.append(line)
                    shown = self.adapter.render(line)
                    if shown:
                        self.say(shown)
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()  # in-process runs (tests) would otherwise leak the pipe
            stop.set()
        self.answer = self.adapter.final_answer(self.lines)
        if self._ended:
            raise SessionFailed(self._ended)
        if self._died:
            raise SessionFailed(f"{self._died} stopped while the agent was running")
        if code != 0:
            failure = getattr(self.adapter, "failure", None)  # an adapter that says why
            reason = failure(self.lines) if failure is not None else None
            raise SessionFailed(reason or f"the agent exited with {code}")
        self.outcome = "ok"
        return EXIT_OK

    def _run_interactive(self) -> int:
        """The user's terminal on the agent's own interface, through our pty relay: resizes
        forwarded, escalation notices shown as lines in between (docs/session.md)."""
        assert self.compose is not None
        self.outcome = "interactive"
        self.agent_started_at = time.time()
        self.say(
            "run: interactive session (the agent's own interface); escalations show up here as "
            "[ironcurtain] lines; exit the agent to tear down"
        )
        relay = terminal.Relay()
        stop = threading.Event()
        notices = threading.Thread(
            target=self._follow_notices, args=(stop, relay.notice), daemon=True
        )
        notices.start()
        watcher = threading.Thread(target=self._watch_proxies, args=(relay, stop), daemon=True)
        watcher.start()
        try:
            code = self.compose.exec_terminal("agent", self.adapter.interactive_command(), relay)
        except terminal.Hangup as exc:
            if exc.gone:
                terminal.detach_stdio()  # teardown goes on; the summary is in summary.json
            raise Interrupted(str(exc)) from None
        finally:
            stop.set()
        if self._ended:
            raise SessionFailed(self._ended)
        if self._died:
            raise SessionFailed(f"{self._died} stopped while the agent was running")
        self.outcome = "ok" if code == 0 else f"agent exited with {code}"
        return EXIT_OK if code == 0 else EXIT_AGENT_FAILED

    def teardown(self) -> None:
        began = time.monotonic()
        self._stop_waking.set()
        if self._waker.is_alive():
            self._waker.join(timeout=START_TIMEOUT_S)  # a room start in progress ends first
        if self.compose is not None:
            try:
                self.compose.down(timeout_s=60)
            except ComposeError as exc:
                self.say(f"run: teardown: {exc}")
                _force_remove(self.client, self.name.project, self.say)
        if self.subscription is not None:
            self.subscription.close()  # after the MITM is gone: nobody asks any more
        self._stop_anchoring.set()
        if self._anchorer.is_alive():
            self._anchorer.join(timeout=START_TIMEOUT_S)
        if self._budget is not None:  # the containers are gone: nothing writes any more
            self._budget.stop()
            if self._lister is not None:
                self._lister.close()
        self._drop_user()
        if self._leases is not None:  # after the networks are gone: their subnets are free
            self._leases.release(self.name.project)
        if self._created:
            self._collect_heads()  # the writers are stopped: these are the final heads
            self.layout.remove_ephemeral()
        self.timings["teardown"] = time.monotonic() - began

    def _audit_logs(self) -> tuple[Path, Path]:
        return (self.layout.audit / "mcp" / "mcp.jsonl", self.layout.audit / "mitm" / "mitm.jsonl")

    def report(self, code: int) -> None:
        mcp_log, mitm_log = self._audit_logs()
        audit = {"mcp": mcp_log, "mitm": mitm_log}
        texts = {k: p.read_text() if p.is_file() else "" for k, p in audit.items()}
        result = summary.Summary(
            session=self.name.session_id,
            project=self.name.project,
            agent=self.adapter.name,
            task=self.options.task or "(interactive)",
            outcome=self.outcome,
            duration_s=round(time.monotonic() - self.started, 3),
            tools=summary.tool_counts(summary.json_lines(texts["mcp"])),
            llm=summary.llm_counts(summary.json_lines(texts["mitm"]), self.agent_started_at),
            audit={k: str(p) for k, p in audit.items() if p.exists()},
            answer=self.answer,
            runtime=self.runtimes.agent if self.runtimes else "",
            room_runtime=self.runtimes.rooms if self.runtimes else "",
        )
        if self.layout.root.exists():
            self.layout.summary.write_text(result.to_json())
        self.say(result.render())
        for name, error in sorted(self.room_errors.items()):  # its calls said so to the agent
            self.say(f"  the room of {name} did not start: {error}")
        if self.layout.root.exists():
            self.say(f"  summary: {self.layout.summary}")
        self.say(f"run: exit {code}")

    # -- steps' parts ----------------------------------------------------------------------

    _died: str | None = None
    _ended: str | None = None  # why `run` ended the session itself (its Redis budget)
    _budget: Watcher | None = None  # the session's Redis budget watcher, once started
    _lister: redis.Redis | None = None  # the admin's client for CLIENT LIST (_client_list)
    _dropping = threading.Lock()  # the user is removed once: at a breach or at teardown
    _created = False
    _user_admin: Path | None = None  # the admin credential, once the session's user exists
    _registrar: Registrar | None = None  # a joined machine's registrar (no admin credential)
    _team_redis_url: str = ""
    _team_ca: Path | None = None
    _registered = False  # the registrar made this session's user
    _leases: leases.Leases | None = None
    # the start-up probe's answer and the gateways it tried (check_isolation reads it once)
    _startup: tuple[checks.ProbeResult, frozenset[str]] | None = None
    agent_started_at = 0.0

    def _project_siblings(self, work: Path, doors: tuple[int, ...]) -> tuple[siblings.Sibling, ...]:
        """The repository's `.ironcurtain/siblings.yaml`, as the user trusted it (none: ())."""
        where = f"{project_build.PROJECT_DIR}/{SIBLINGS_FILE}"
        try:
            data = project_build.trusted_file(
                work, project_build.trusted_dir(self.state), SIBLINGS_FILE
            )
            if data is None:
                return ()
            doc = yaml.safe_load(data.decode("utf-8"))
        except project_build.ProjectImageError as exc:
            raise Refused(str(exc)) from None
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise Refused(f"{where}: cannot read the sibling services: {exc}") from None
        return siblings.parse(doc, where, doors)

    def _project_image(self, work: Path) -> str | None:
        """The repository's own agent image (.ironcurtain/agent.Dockerfile), built and checked
        (images/project.py) before anything starts; None when it brings none."""
        try:
            return project_build.ensure(
                self.client,
                work,
                self.adapter.image,
                self.tag,
                self.adapter.oneshot_command("")[0],
                project_build.verdicts_dir(self.state),
                self.say,
            )
        except project_build.ProjectImageError as exc:
            raise Refused(str(exc)) from None

    def _ensure_images(self) -> None:
        wanted = [*SESSION_IMAGES, self.adapter.image]
        settings = self._build_settings()
        try:
            ImageBuilder(self.client, settings, say=self.say).build(wanted)
        except (BuildError, CatalogError) as exc:
            raise Refused(f"images: {exc}") from None

    def _ensure_ca(self) -> Path:
        ca_dir = Path(self.environ.get("IRONCURTAIN_CA_DIR") or self.state / "ca")
        hosts = sorted(h for p in providers.builtin().values() for h in p.hosts)
        if ca.ensure(ca_dir, hosts):
            self.say(f"run: made the MITM CA in {ca_dir}")
        try:
            ca.load(ca_dir)
        except ca.CAError as exc:
            raise Refused(f"the MITM CA in {ca_dir}: {exc}") from None
        return ca_dir

    def _ensure_shared(self) -> dict[str, str]:
        environ = shared_environ(self.environ)
        environ["IRONCURTAIN_IMAGE_TAG"] = self.tag  # the loader's (env > user config > .env)
        team = Team(self.state / "team")
        if team.joined():
            return self._join_team(team, environ)
        files = SharedFiles(Path(environ["IRONCURTAIN_SHARED_DIR"]))
        project = environ.get("IRONCURTAIN_SHARED_PROJECT", "ironcurtain-shared")
        # Held while checking and starting: concurrent first sessions start the stack once.
        with files.lock():
            try:
                environ["IRONCURTAIN_SECRETS_UID"] = str(files.ensure(say=self.say))
            except OSError as exc:
                raise Refused(f"the shared stack's secret files: {exc}") from None
            # What a session needs is Redis and the approval service answering; the worker only
            # notifies (webhook, auto-review), so it must run but its health check, a Python start
            # that a loaded machine can push past its timeout, does not hold sessions back.
            if _healthy(self.client, project, ("redis", "approval"), running=("worker",)):
                return environ
            self.say("run: starting the team-shared stack (redis, approval, worker)")
            shared = Compose(
                project, files=shared_compose_files(self.repo, environ), env=environ, cwd=self.repo
            )
            try:
                shared.up(timeout_s=120)
            except ComposeError as exc:
                raise Refused(f"the shared stack did not start: {exc}") from None
        return environ

    def _join_team(self, team: Team, environ: dict[str, str]) -> dict[str, str]:
        """A machine that joined a team server starts no stack: its sessions dial the team's
        Redis (through the MCP proxy's egress leg) and get their users from the registrar. The
        `shared` network the compose file names is made empty and internal, for nothing."""
        try:
            self._registrar, self._team_redis_url = team.load()
        except (OSError, ValueError, KeyError) as exc:
            raise Refused(
                f"this machine joined a team server but its files are unusable ({exc}); "
                "run `ironcurtain shared join` again or `ironcurtain shared leave`"
            ) from None
        self._team_ca = team.ca
        name = environ["IRONCURTAIN_SHARED_NETWORK"]
        try:
            self.client.networks.get(name)
        except docker.errors.NotFound:
            labels = {"org.ironcurtain.part": "shared"}
            if self.environ.get("IRONCURTAIN_TEST_RUN"):
                labels["org.ironcurtain.test-run"] = self.environ["IRONCURTAIN_TEST_RUN"]
            self.client.networks.create(name, driver="bridge", internal=True, labels=labels)
        return environ

    def _write_files(self, real_keys: dict[str, str], ca_dir: Path, shared_dir: Path) -> None:
        assert self.plan is not None
        layout = self.layout
        # Private folders, each for the one container uid that writes it. The sandbox's socket
        # folder is shared by the MCP proxy and its sandbox, which run as the same uid: nobody
        # else may enter it (and it is never mounted into the agent).
        for folder, uid in (
            (layout.audit / "mcp", self.plan.owner.uid),
            (layout.audit / "mitm", MITM_UID),
            (layout.rooms, self.plan.owner.uid),
            *((layout.rooms / s.name, self.plan.owner.uid) for s in self.rooms),
            (layout.room_servers, self.plan.owner.uid),
            (layout.wake, self.plan.owner.uid),
        ):
            folder.mkdir(mode=0o700, exist_ok=True)
            folder.chmod(0o700)  # exactly this, whatever the umask took away
            if workspace.is_root():
                os.chown(folder, uid, uid)
        for spec in self.rooms:  # each room's server, for that room alone (no policy there)
            layout.write_room_server(spec.name, dump_spec(spec), self.plan.owner.uid)
        # Real keys: one file per provider the compose file declares (empty when unused).
        for provider in plan.SECRET_PROVIDERS:
            layout.write_secret(plan.secret_name(provider), real_keys.get(provider, ""), MITM_UID)
        # Each writing proxy's audit key: a secret for it alone, and a copy kept in anchor/.
        for log, uid in zip(self._audit_logs(), (self.plan.owner.uid, MITM_UID), strict=True):
            key = audit_keys.new_key()
            audit_keys.write_key(key_path(layout.anchor, log), key)
            layout.write_secret(f"audit_key_{log.stem}", audit_keys.encode(key), uid)
        # The CA key for the MITM only: a copy in the secrets folder, removed at teardown.
        ca_copy = layout.secrets / "mitm-ca"
        copy_ca(ca_dir, ca_copy)
        if workspace.is_root():
            for path in (ca_copy, ca_copy / ca.KEY_FILE, ca_copy / ca.CERT_FILE):
                os.chown(path, MITM_UID, MITM_UID)
        # The MITM's settings (fake keys) and any upstream CA (tests and mirrors).
        fakes = {}
        known = providers.builtin()
        for provider in self.adapter.providers:
            fakes[provider] = new_fake_key(known[provider].key_prefix)
        oauth_entries: dict[str, dict[str, str]] = {}
        oauth_dir = layout.root / subscription.SOCKET_DIR  # mounted into the MITM only
        oauth_dir.mkdir(mode=0o700, exist_ok=True)
        if workspace.is_root():
            os.chown(oauth_dir, MITM_UID, MITM_UID)
        if self.subscription is not None:
            name = self.subscription.provider.name
            fakes[name] = self.subscription.fake_access
            oauth_entries[name] = self.subscription.mitm_entry()
            # The host answers the MITM's token requests from here on (teardown stops it).
            self.subscription.serve(oauth_dir, MITM_UID if workspace.is_root() else None)
        settings_doc = self.plan.mitm_settings(fakes, oauth_entries)
        _write_public(layout.mitm / "mitm.yaml", json.dumps(settings_doc, indent=2))
        for name, source in plan.upstream_ca_files(self.plan.upstreams).items():
            _write_public(layout.mitm / name, source.read_text())
        # The agent: orientation files, the CA certificate, its environment (fakes only).
        _write_public(layout.agent / "ca.pem", (ca_dir / ca.CERT_FILE).read_text())
        for item in self.adapter.orientation_files(plan.ENDPOINTS):
            _write_public(layout.agent / item.path, item.content)
        if self.subscription is not None:  # the agent's own login: the same shape, fakes only
            creds = layout.agent / ".claude" / ".credentials.json"
            _write_public(creds, self.subscription.agent_credentials())
        env = self.adapter.environment(plan.ENDPOINTS, fakes)
        _write_public(layout.agent_env, plan.agent_env_file(env))
        # Who the agent is (mounted over the image's /etc/passwd and /etc/group, read-only).
        _write_public(layout.identity / "passwd", self.plan.owner.passwd())
        _write_public(layout.identity / "group", self.plan.owner.group())

    def _admin_channel(self, admin_file: Path) -> Any:
        """The admin's channel to this machine's stack: the Redis container's address dialled,
        the certificate's name `redis` checked against the team CA."""
        from ..escalation.channel import Channel, connect

        address = _redis_address(self.client, self.plan.shared_network if self.plan else "")
        ca_file = SharedFiles(admin_file.parent).tls.ca
        return Channel(connect(LOCAL_REDIS_URL, admin_file, ca_file=ca_file, address=address))

    def _live_projects(self) -> set[str]:
        """This machine's sessions whose Redis users a sweep must keep: those with containers,
        and those still starting, which hold a subnet lease (taken before their user is made)
        but have no container yet. Without the leases a session starting beside another lost
        its user, and its keys, to the other's sweep."""
        live = {
            c.labels.get(PROJECT_LABEL, "")
            for c in self.client.containers.list(filters={"label": PROJECT_LABEL})
        }
        if self._leases is not None:
            live |= self._leases.live_projects()
        return live

    def _session_user(self, shared_dir: Path) -> None:
        """The session's own Redis user (made with the admin credential, which stays here): its
        credential is the file the MCP proxy gets; stale users of gone sessions are swept."""
        import redis

        from ..escalation import users

        assert self.plan is not None
        if self._registrar is not None:
            self._team_session_user()
            return
        admin_file = SharedFiles(shared_dir).redis_admin
        try:
            channel = self._admin_channel(admin_file)
            machine = _machine(self.client)
            live = self._live_projects()
            removed = users.sweep(channel.redis, machine=machine, live_projects=live)
            if removed:
                self.say(f"run: removed {len(removed)} stale session user(s) from Redis")
            # Exclusive: a session id someone claimed already (a member's machine, through the
            # registrar) is refused, never re-made under a connection that user still holds.
            credential = users.create_session_user(
                channel.redis,
                self.name.session_id,
                project=self.name.project,
                machine=machine,
                exclusive=True,
            )
            self._user_admin = admin_file
            channel.register(
                self.name.session_id,
                worktree=self.name.worktree,
                agent=self.adapter.name,
                task=self.options.task or "",
            )
            channel.redis.close()
        except (redis.RedisError, OSError, ValueError, SessionFailed) as exc:
            raise Refused(f"cannot make the session's Redis user: {exc}") from None
        # Named `redis_password` in compose.yaml; it holds `USER PASSWORD` (escalation/acl.py).
        self.layout.write_secret("redis_password", credential.line().strip(), self.plan.owner.uid)
        # The team CA's certificate (public): the one trust anchor the proxy has for Redis.
        ca_pem = SharedFiles(shared_dir).tls.ca.read_text()
        self.layout.write_secret("redis_ca", ca_pem, self.plan.owner.uid)

    def _team_session_user(self) -> None:
        """On a joined machine: the registrar makes the session's user (this machine holds no
        Redis admin credential) and returns its password once; the proxy gets it and the CA."""
        from ..registrar.client import RegistrarError

        assert self.plan is not None
        assert self._registrar is not None
        live = sorted(self._live_projects() - {""})
        try:
            credential = self._registrar.create_user(
                self.name.session_id,
                project=self.name.project,
                machine=_machine(self.client),
                worktree=self.name.worktree,
                agent=self.adapter.name,
                task=self.options.task or "",
                live=live,
            )
        except RegistrarError as exc:
            raise Refused(
                f"the team's registrar made no Redis user for this session: {exc}"
            ) from None
        self._registered = True
        self.layout.write_secret("redis_password", credential.line().strip(), self.plan.owner.uid)
        assert self._team_ca is not None
        self.layout.write_secret("redis_ca", self._team_ca.read_text(), self.plan.owner.uid)

    def _watch_budget(self) -> None:
        """The session's Redis budget watched from now until teardown (escalation/watcher.py),
        with the session's own credential: over budget, or its count no longer known, the
        session's user is removed at once (its connections dropped) and the session ends."""
        import redis

        from ..escalation import tls
        from ..escalation.budget import Breach, Limits
        from ..escalation.channel import connect
        from ..escalation.watcher import NotAnnounced, Watcher

        assert self.plan is not None
        try:
            limits = Limits.from_environ(self.environ)
        except ValueError as exc:
            raise Refused(f"the session's Redis budget: {exc}") from None
        credential_file = self.layout.secrets / "redis_password"
        plan_ = self.plan

        def dial() -> redis.Redis:
            local = self._registrar is None
            address = _redis_address(self.client, plan_.shared_network) if local else None
            return connect(
                plan_.redis_url, credential_file, ca_file=self.layout.secrets / "redis_ca",
                address=address,
            )  # fmt: skip

        def breached(breach: Breach) -> None:
            self._end_session(f"the session exceeded its Redis budget ({breach.describe()})")

        def lost(why: str) -> None:
            self._end_session(f"the session's Redis budget cannot be enforced: {why}")

        watcher = Watcher(
            dial, self.name.session_id, db=tls.Endpoint.parse(plan_.redis_url).db,
            limits=limits, on_breach=breached, on_lost=lost,
            restore=lambda: self._restore_session_user(credential_file),
            clients=self._client_list if self._user_admin is not None else None,
        )  # fmt: skip
        try:
            watcher.start()
        except (redis.RedisError, OSError, NotAnnounced, SessionFailed) as exc:
            raise Refused(f"cannot watch the session's Redis budget: {exc}") from None
        self._budget = watcher
        self.say(f"run: the session's Redis budget: {limits.describe()}")

    def _client_list(self) -> list[dict[str, str]]:
        """CLIENT LIST as the admin sees it (a local session: `run` holds the admin credential),
        so the watcher counts the session's connections too; one admin connection, kept."""
        import redis

        if self._lister is None:
            if self._user_admin is None:
                return []
            try:
                self._lister = self._admin_channel(self._user_admin).redis
            except SessionFailed as exc:  # no Redis container found: this round has no list
                raise OSError(str(exc)) from None
        try:
            return cast(list[dict[str, str]], self._lister.client_list())
        except redis.RedisError:
            self._lister.close()  # a new connection next round (Redis restarted, say)
            self._lister = None
            raise

    def _end_session(self, reason: str) -> None:
        """`run` ends the session itself: said, the session's Redis user removed at once (its
        connections with it; nobody puts it back), the agent killed by _watch_proxies."""
        if self._ended:
            return
        self._ended = reason
        self.say(f"run: {reason}: stopped")
        self._drop_user()

    def _drop_user(self) -> None:
        with self._dropping:
            if self._user_admin is not None:
                self._remove_session_user()
            if self._registered and self._registrar is not None:
                from ..registrar.client import RegistrarError

                try:
                    self._registrar.remove_user(self.name.session_id)
                except RegistrarError as exc:
                    self.say(f"run: the session's Redis user stays until a sweep: {exc}")
                self._registered = False

    def _remove_session_user(self) -> None:
        import redis

        from ..escalation import users

        assert self._user_admin is not None
        try:
            channel = self._admin_channel(self._user_admin)
            users.remove_session_user(channel.redis, self.name.session_id)
            channel.redis.close()
        except (redis.RedisError, OSError, ValueError, SessionFailed) as exc:
            self.say(f"run: teardown: the session's Redis user stays until a sweep: {exc}")
        self._user_admin = None

    def _container(self, service: str) -> docker.models.containers.Container:
        found = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"{PROJECT_LABEL}={self.name.project}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        if len(found) != 1:
            raise SessionFailed(f"expected one {service} container, found {len(found)}")
        return found[0]

    def _gateways(self) -> list[str]:
        """Every gateway address of the session's networks, the shared one and docker0: each is
        the host (or would be, without inhibit_ipv4). As the engine reports them now."""
        assert self.plan is not None
        names = [f"{self.name.project}_{n.role}" for n in SESSION_NETWORKS]
        names += [self.plan.shared_network, "bridge"]
        return _gateway_addresses(self.client, names)

    def _expected_gateways(self) -> list[str]:
        """The gateways before the session's networks exist: those compose.yaml gives them
        (Plan.gateway), the shared network's and docker0's as the engine reports them.
        check_isolation compares them with what the engine reports once they exist."""
        assert self.plan is not None
        found = [g for g in (self.plan.gateway(n.role) for n in SESSION_NETWORKS) if g]
        others = _gateway_addresses(self.client, [self.plan.shared_network, "bridge"])
        return [*found, *(g for g in others if g not in found)]

    def _follow_notices(self, stop: threading.Event, show: Say | None = None) -> None:
        """Escalation notices for this session (the shared channel), shown as they come: printed
        (one-shot) or put into the user's terminal by the relay (interactive). As the session's
        own user; if Redis restarted (it keeps no users), the user is put back, same password."""
        assert self.plan is not None
        show = show or self.say
        import redis

        from ..escalation.channel import Channel, connect

        credential_file = self.layout.secrets / "redis_password"
        said = False
        while not stop.is_set():
            try:
                # Local: the container's address, the name `redis` checked; joined: the team host.
                local = self._registrar is None
                address = _redis_address(self.client, self.plan.shared_network) if local else None
                channel = Channel(
                    connect(
                        self.plan.redis_url,
                        credential_file,
                        ca_file=self.layout.secrets / "redis_ca",
                        address=address,
                    )
                )
                for line in channel.follow(self.name.session_id, timeout_s=0.5):
                    if stop.is_set():
                        return
                    if line:
                        show(terminal.safe_line(line))  # it quotes the agent's tool arguments
            except (redis.RedisError, OSError, SessionFailed) as exc:
                if not said:
                    show(f"run: escalation notices interrupted ({type(exc).__name__}: {exc})")
                    said = True
                if self._restore_session_user(credential_file):
                    show("run: Redis had restarted: the session's user is back")
                stop.wait(1.0)
            except Exception as exc:  # notices are a convenience; the approval UI still works
                show(f"run: escalation notices unavailable here ({type(exc).__name__}: {exc})")
                return

    def _restore_session_user(self, credential_file: Path) -> bool:
        """Put the session's user back if Redis forgot it (a restart): with the admin
        credential here, or on a joined machine by the team's registrar, which recognises the
        password it gave us. True if it had to; failures are left to the next try (the proxy
        meanwhile fails each escalation closed, saying Redis is unreachable)."""
        import redis

        from ..escalation.channel import read_credential
        from ..escalation.users import restore_session_user
        from ..registrar.client import RegistrarError

        assert self.plan is not None
        if self._ended:  # removed on purpose: never put back
            return False
        try:
            credential = read_credential(credential_file)
            project, machine = self.name.project, _machine(self.client)
            if self._registrar is not None:
                return self._registrar.restore_user(
                    self.name.session_id, credential, project=project, machine=machine,
                    worktree=self.name.worktree, agent=self.adapter.name,
                    task=self.options.task or "",
                )  # fmt: skip
            if self._user_admin is None:
                return False
            admin = self._admin_channel(self._user_admin)
            try:
                restored = restore_session_user(
                    admin.redis, self.name.session_id, credential, project=project, machine=machine
                )
                if restored:
                    admin.register(
                        self.name.session_id, worktree=self.name.worktree,
                        agent=self.adapter.name, task=self.options.task or "",
                    )  # fmt: skip
                return restored
            finally:
                admin.redis.close()
        except (redis.RedisError, OSError, ValueError, SessionFailed, RegistrarError):
            return False

    def _collect_heads(self) -> None:
        for anchor in self._anchors:
            try:
                anchor.collect()
            except OSError as exc:  # verify then says the checkpoints are behind or missing
                self.say(f"run: cannot checkpoint {anchor.log.name}: {exc}")

    def _anchor(self) -> None:
        """Every second, each log's head into its checkpoints: a rewrite inside a container
        can then reach back no further than the last second."""
        while not self._stop_anchoring.wait(1.0):
            self._collect_heads()

    def _wake_rooms(self) -> None:
        """Start a server's room when the MCP proxy asks (its first call to server NAME
        creates wake/NAME), once each. A failed start is left to the proxy's deadline, which
        fails that call saying the room's socket did not appear."""
        waiting = {s.name for s in self.rooms}
        while waiting and not self._stop_waking.wait(0.1):  # a cheap listing, until torn down
            try:
                asked = sorted(waiting.intersection(os.listdir(self.layout.wake)))
            except OSError:
                continue
            assert self.compose is not None
            for name in asked:
                waiting.discard(name)
                began = time.monotonic()
                try:
                    self.compose.up([rooms.service(name)], timeout_s=START_TIMEOUT_S, wait=False)
                except ComposeError as exc:
                    self.room_errors[name] = str(exc)
                else:
                    self.timings[f"room-{name}"] = time.monotonic() - began
                    self.rooms_up.add(name)

    def _watch_proxies(
        self, proc: subprocess.Popen[str] | terminal.Relay, stop: threading.Event
    ) -> None:
        """A door that stops mid-session ends the session (the agent is killed, then teardown),
        and so does `run` ending it (_end_session)."""
        while not stop.wait(1.0):
            if self._ended:  # over its Redis budget: its user is gone already
                proc.kill()
                return
            services = ["sidecar", "mcp-proxy", "mitm-proxy", "socket-proxy"]
            services += [rooms.service(name) for name in sorted(self.rooms_up)]  # on demand
            try:
                states = {
                    c.labels.get("com.docker.compose.service"): c.status
                    for c in self.client.containers.list(
                        all=True, filters={"label": f"{PROJECT_LABEL}={self.name.project}"}
                    )
                }
            except docker.errors.DockerException:
                continue
            dead = [s for s in services if states.get(s) != "running"]
            if dead:
                self._died = ", ".join(dead)
                proc.kill()
                return

    def _logs(self) -> str:
        assert self.compose is not None
        try:
            return self.compose.logs(tail=20, timeout_s=20)
        except ComposeError as exc:
            return f"(no logs: {exc})"


def _gateway_addresses(client: docker.DockerClient, names: list[str]) -> list[str]:
    """The IPv4 gateways of the named networks (one engine call for all of them)."""
    by_name = {str(doc.get("Name")): doc for doc in client.api.networks()}
    found: list[str] = []
    for name in names:
        for config in (by_name.get(name, {}).get("IPAM") or {}).get("Config") or []:
            gateway = config.get("Gateway")
            if gateway and ":" not in gateway and gateway not in found:
                found.append(gateway)
    return found


def _close_response(stream: object) -> None:
    """docker-py's CancellableStream.close shuts the socket down but leaves the HTTP response
    (and its connection) to the garbage collector, which warns: close it here."""
    response = getattr(stream, "_response", None)
    if response is not None:
        response.close()


def _exec(container: docker.models.containers.Container, argv: list[str]) -> str:
    """A command in a running container as its own user (through the engine's API: no compose
    process to start), its output; the probe's result is its last JSON line."""
    try:
        result = container.exec_run(argv, stdout=True, stderr=True)
    except docker.errors.DockerException as exc:
        raise SessionFailed(f"cannot run the probe in {container.name}: {exc}") from None
    output = cast(bytes, result.output)  # bytes, not an iterator: stream is off
    return output.decode(errors="replace")


def copy_ca(ca_dir: Path, dest: Path) -> None:
    """The CA for one session's MITM: folder 0700, key 0600, certificate 0644.

    Modes are given at creation, not through the umask: the umask is the whole process's, and
    sessions started from threads of one process (benchmarks, tests) would race on it."""
    dest.mkdir(mode=0o700)
    dest.chmod(0o700)
    for name, mode in ((ca.KEY_FILE, 0o600), (ca.CERT_FILE, 0o644)):
        fd = os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as out:
            out.write((ca_dir / name).read_bytes())
        os.chmod(dest / name, mode)  # exactly this, whatever the umask took away


def _write_public(path: Path, text: str) -> None:
    """A file every container user may read (modes set explicitly: the umask is process-wide)."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True)
        path.parent.chmod(0o755)
    path.write_text(text)
    path.chmod(0o644)


def _healthy(
    client: docker.DockerClient,
    project: str,
    services: tuple[str, ...],
    running: tuple[str, ...] = (),
) -> bool:
    """Every one of `services` answers its health check, each of `running` runs, *and* all of
    them run their images as built now: a stack started by an older IronCurtain (other code,
    another Redis ACL) is brought up to date by compose rather than used as it is."""
    containers = client.containers.list(filters={"label": f"{PROJECT_LABEL}={project}"})
    health = {
        c.labels.get("com.docker.compose.service"): c.attrs.get("State", {})
        .get("Health", {})
        .get("Status")
        for c in containers
    }
    if not all(health.get(s) == "healthy" for s in services):
        return False
    if not all(health.get(s) in ("healthy", "unhealthy", "starting") for s in running):
        return False  # not there at all (a health status means the container runs)
    return all(_runs_current_image(client, c) for c in containers)


def _runs_current_image(
    client: docker.DockerClient, container: docker.models.containers.Container
) -> bool:
    name = container.attrs.get("Config", {}).get("Image", "")
    try:
        return bool(name) and client.images.get(name).id == container.attrs.get("Image")
    except docker.errors.DockerException:  # the tag is gone or unreadable: let compose decide
        return False


def _machine(client: docker.DockerClient) -> str:
    """Which engine made a session user (the sweep removes only its own machine's)."""
    try:
        return str(client.info().get("ID", "")) or socket.gethostname()
    except docker.errors.DockerException:
        return socket.gethostname()


def _redis_address(client: docker.DockerClient, network: str) -> str:
    for container in client.networks.get(network).attrs.get("Containers", {}).values():
        if container.get("Name", "").endswith("redis-1"):
            return container["IPv4Address"].split("/")[0]
    raise SessionFailed(f"no redis container on {network}")


def _force_remove(client: docker.DockerClient, project: str, say: Say) -> None:
    """The backstop when compose down fails: remove the project's containers and networks."""
    label = f"{PROJECT_LABEL}={project}"
    for container in client.containers.list(all=True, filters={"label": label}):
        try:
            container.remove(force=True)
        except docker.errors.DockerException as exc:
            say(f"run: could not remove {container.name}: {exc}")
    for network in client.networks.list(filters={"label": label}):
        try:
            network.remove()
        except docker.errors.DockerException as exc:
            say(f"run: could not remove network {network.name}: {exc}")


def run_session(options: Options, say: Say = print) -> int:
    try:
        session = Session(options, say)
    except (Refused, ValueError) as exc:
        say(f"run: refused: {exc}")
        return EXIT_REFUSED
    except docker.errors.DockerException as exc:
        say(f"run: refused: no Docker engine answers ({exc}); `make engine` sets one up")
        return EXIT_REFUSED
    return session.run()
