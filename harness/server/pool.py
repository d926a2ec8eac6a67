"""Servers shared across a pytest session, keyed by configuration.

Tests that ask for the same ServerConfig share one server. At most `max_live` servers run at once (a 2-core box
or one NPU card holds one); asking for another configuration stops the least recently used one first. A
configuration whose server failed to start, or whose devices could not be leased, fails again at once for every
later test instead of waiting out the deadline once per test. A live server is checked before it is handed out
(process alive, /health answers): one that died or hangs since the last test is stopped, its group killed, and
started again, with a warning and an entry in `restarts` for the run's report. On NPUs and GPUs a server whose
plan lists `devices` first leases tensor x pipeline size of them (harness.runtime.leases) and sees only those; the
lease ends with the server.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from harness.errors import ServerStartError
from harness.paths import inside
from harness.runtime.leases import LEASED_PLATFORMS, DeviceLease, LeaseError
from harness.server.vllm import ServerConfig, VLLMServer

ServerFactory = Callable[[ServerConfig, Path], VLLMServer]


class ServerRestarted(UserWarning):
    """A pooled server died or hung between tests and was started again."""


class ServerPool:
    """Starts servers on demand and stops every one of them in `close` (also when used as a context manager)."""

    def __init__(
        self,
        log_dir: Path,
        max_live: int = 1,
        factory: ServerFactory = VLLMServer,
        lease_dir: Path | None = None,
        lease_timeout_s: float = 600.0,
        log_prefix: str = "",
    ) -> None:
        self.log_prefix = log_prefix  # a pytest-xdist worker's id: each worker's servers log to files of their own
        self.log_dir = log_dir
        self.lease_dir = lease_dir or log_dir / "leases"
        self.lease_timeout_s = lease_timeout_s
        self._leases: dict[str, DeviceLease] = {}
        self.max_live = max_live
        self.factory = factory
        self.started: list[VLLMServer] = []  # every server this pool started, for the run's report
        self._live: OrderedDict[str, VLLMServer] = OrderedDict()
        self._failed: dict[str, ServerStartError | LeaseError] = {}
        self.restarts: list[dict[str, str]] = []  # servers found dead or hung and started again
        self._attached: dict[str, AbstractContextManager[object]] = {}  # run while their server runs

    def get(self, config: ServerConfig, alongside: ServerConfig | None = None) -> VLLMServer:
        """The server for `config`, started if needed; `alongside` (an A/B reference) is kept running beside it
        even when that makes one more live server than `max_live`."""
        key = config.key()
        keep = alongside.key() if alongside is not None else None
        if key in self._failed:
            raise self._failed[key]
        if key in self._live:
            problem = self._live[key].problem()
            if problem is None:
                self._live.move_to_end(key)
                return self._live[key]
            self._restart(key, problem)
        limit = self.max_live + (1 if keep in self._live else 0)
        while len(self._live) >= limit:
            oldest_key = next(k for k in self._live if k != keep)
            self._stop(oldest_key, self._live.pop(oldest_key))
        try:
            lease = self._lease(config)
        except LeaseError as exc:  # remembered: the next test must not wait out the lease deadline again
            self._failed[key] = exc
            raise
        started = config if lease is None else dataclasses.replace(config, devices=tuple(lease.devices))
        server = self.factory(started, self.log_path(config))
        try:
            server.__enter__()
        except BaseException as exc:
            if lease is not None:
                lease.release()
            if isinstance(exc, ServerStartError):
                self._failed[key] = exc
            raise
        if lease is not None:
            self._leases[key] = lease
        self._live[key] = server
        self.started.append(server)
        return server

    def attach(self, server: VLLMServer, make: Callable[[], AbstractContextManager[object] | None]) -> None:
        """Run a context (device telemetry) for as long as `server` runs: made and entered now unless one already
        runs for it, exited just before the server stops, however the pool stops it."""
        key = next((k for k, live in self._live.items() if live is server), None)
        if key is None or key in self._attached:
            return
        context = make()
        if context is not None:
            context.__enter__()
            self._attached[key] = context

    def log_path(self, config: ServerConfig) -> Path:
        """Where the server for `config` logs (a start that failed leaves its reason there)."""
        return inside(self.log_dir, f"{self.log_prefix}vllm-{config.served_model_name}-{config.key()}.log")

    def _restart(self, key: str, problem: str) -> None:
        """Take a server that cannot serve out of the pool (the caller starts a new one) and say so."""
        server = self._live.pop(key)
        message = f"the {server.config.served_model_name} server ({server.log_path}) was restarted: {problem}"
        self.restarts.append({"model": server.config.served_model_name, "reason": problem, "log": str(server.log_path)})
        warnings.warn(ServerRestarted(message), stacklevel=3)
        self._stop(key, server)

    def _lease(self, config: ServerConfig) -> DeviceLease | None:
        devices = config.spec.devices
        if config.platform not in LEASED_PLATFORMS or not devices:
            return None
        count = config.spec.tensor_parallel_size * config.spec.pipeline_parallel_size
        holder = f"pid {os.getpid()}: {config.served_model_name}"
        return DeviceLease(self.lease_dir, config.platform, devices, count, self.lease_timeout_s, holder).__enter__()

    def _stop(self, key: str, server: VLLMServer) -> None:
        try:
            attached = self._attached.pop(key, None)
            if attached is not None:
                attached.__exit__(None, None, None)
        finally:
            self._stop_server(key, server)

    def _stop_server(self, key: str, server: VLLMServer) -> None:
        try:
            server.stop()
        finally:
            lease = self._leases.pop(key, None)
            if lease is not None:
                lease.release()

    def close(self) -> None:
        errors: list[BaseException] = []
        while self._live:
            key, server = self._live.popitem()
            try:
                self._stop(key, server)
            except Exception as exc:  # stop the others before reporting
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
