"""Servers shared across a pytest session, keyed by configuration.

Tests that ask for the same ServerConfig share one server. At most `max_live` servers run at once (a 2-core box
or one NPU card holds one); asking for another configuration stops the least recently used one first. A
configuration whose server failed to start fails again at once for every later test instead of waiting out the
readiness deadline once per test.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from harness.errors import ServerStartError
from harness.server.vllm import ServerConfig, VLLMServer

ServerFactory = Callable[[ServerConfig, Path], VLLMServer]


class ServerPool:
    """Starts servers on demand and stops every one of them in `close` (also when used as a context manager)."""

    def __init__(self, log_dir: Path, max_live: int = 1, factory: ServerFactory = VLLMServer) -> None:
        self.log_dir = log_dir
        self.max_live = max_live
        self.factory = factory
        self.started: list[VLLMServer] = []  # every server this pool started, for the run's report
        self._live: OrderedDict[str, VLLMServer] = OrderedDict()
        self._failed: dict[str, ServerStartError] = {}

    def get(self, config: ServerConfig) -> VLLMServer:
        key = config.key()
        if key in self._failed:
            raise self._failed[key]
        if key in self._live:
            self._live.move_to_end(key)
            return self._live[key]
        while len(self._live) >= self.max_live:
            _, oldest = self._live.popitem(last=False)
            oldest.stop()
        server = self.factory(config, self.log_dir / f"vllm-{config.served_model_name}-{key}.log")
        try:
            server.__enter__()
        except ServerStartError as exc:
            self._failed[key] = exc
            raise
        self._live[key] = server
        self.started.append(server)
        return server

    def close(self) -> None:
        errors: list[BaseException] = []
        while self._live:
            _, server = self._live.popitem()
            try:
                server.stop()
            except Exception as exc:  # stop the others before reporting
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
