"""The request proxy (harness.deploy.proxy) as a managed process: started in front of a deployment's instances,
ready when its /health (every instance's) and /v1/models answer, stopped with its whole process group on every
exit path."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from harness.errors import ServerStartError
from harness.runtime.process import ManagedProcess
from harness.runtime.sockets import free_port
from harness.server.endpoint import Endpoint
from harness.server.readiness import NotReady, wait_until_ready


class ProxyServer:
    """`with ProxyServer(prefill_urls, decode_urls, model, log) as proxy: proxy.endpoint ...`"""

    def __init__(
        self,
        prefill: Sequence[str],
        decode: Sequence[str],
        model: str,
        log_path: Path,
        policy: str = "round-robin",
        api_key: str | None = None,
        ready_timeout_s: float = 60.0,
    ) -> None:
        self.prefill, self.decode, self.model = list(prefill), list(decode), model
        self.log_path, self.policy, self.api_key = log_path, policy, api_key
        self.ready_timeout_s = ready_timeout_s
        self.process: ManagedProcess | None = None
        self.endpoint = Endpoint("", model, api_key)

    def argv(self, port: int | str) -> list[str]:
        return [
            sys.executable, "-m", "harness.deploy.proxy", "--port", str(port), "--policy", self.policy,
            "--prefill", *self.prefill, "--decode", *self.decode,
        ]  # fmt: skip

    def __enter__(self) -> ProxyServer:
        port = free_port()
        self.process = ManagedProcess(self.argv(port), self.log_path).__enter__()
        self.endpoint = Endpoint(f"http://127.0.0.1:{port}", self.model, self.api_key)
        try:
            entry = wait_until_ready(self.endpoint, self.ready_timeout_s, self.process.returncode)
        except NotReady as exc:
            said = _health_text(self.endpoint)  # which instance is down, as the proxy's /health says it
            tail = self.process.log_tail(30)
            self.stop()
            raise ServerStartError(f"the request proxy: {exc}{said}", tail) from None
        except BaseException:
            self.stop()
            raise
        self.endpoint = Endpoint(self.endpoint.base_url, self.model, self.api_key, entry.get("max_model_len"))
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _health_text(endpoint: Endpoint) -> str:
    """`: <body>` of the proxy's /health when it answers with an error (it names the instances down), else ''."""
    try:
        with urllib.request.urlopen(endpoint.url("/health"), timeout=5) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        return ": " + exc.read().decode("utf-8", "replace")[:500]
    except (urllib.error.URLError, OSError):
        pass
    return ""
