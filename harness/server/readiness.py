"""Waiting for a server to become ready: with a deadline, watching the process, never forever."""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable
from typing import Any

from harness.runtime.process import group_members
from harness.runtime.sockets import listening_pids
from harness.server.endpoint import Endpoint, get_json, served_models

POLL_TIMEOUT_S = 5.0


class NotReady(Exception):
    """Raised by `wait_until_ready` with the reason; the caller adds the log tail."""


def wait_until_ready(
    endpoint: Endpoint,
    deadline_s: float,
    exit_code: Callable[[], int | None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = 1.0,
) -> dict[str, Any]:
    """Poll `/health`, then check `/v1/models` lists the model; return that model's /v1/models entry.

    Raises NotReady as soon as `exit_code()` reports the process has exited, or when `deadline_s` passes.
    """
    start = clock()
    last_problem = "no answer yet"
    while True:
        code = exit_code()
        if code is not None:
            raise NotReady(f"the server process exited with code {code} before it was ready")
        if clock() - start > deadline_s:
            raise NotReady(f"the server was not ready within {deadline_s:.0f} s ({last_problem})")
        try:
            require_ok(endpoint.url("/health"), endpoint.headers())
            models = served_models(endpoint.base_url, endpoint.headers(), POLL_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):  # no amount of waiting fixes a key
                key = "with the API key it was given" if endpoint.api_key else "without an API key"
                raise NotReady(
                    f"HTTP {exc.code} from {exc.url} {key}: set the key the server requires in the plan "
                    "(--api-key in server.extra-args, or VLLM_API_KEY in server.env)"
                ) from None
            last_problem = f"HTTP {exc.code} from {exc.url}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last_problem = str(exc)
        else:
            if endpoint.model in models:
                entry: dict[str, Any] = models[endpoint.model]
                return entry
            last_problem = f"/v1/models lists {sorted(models)}, not {endpoint.model!r}"
        sleep(poll_s)


def require_ok(url: str, headers: dict[str, str], timeout_s: float = POLL_TIMEOUT_S) -> None:
    """GET `url` and require a 2xx; /health's body is empty, so it is not parsed."""
    try:
        get_json(url, headers, timeout_s)
    except ValueError:
        return  # 200 with an empty or non-JSON body is what /health returns


def require_own_listener(port: int, pgid: int) -> None:
    """The server that answered on `port` must be the one started (process group `pgid`): another process may take
    a free port between the moment it is picked and the moment vLLM binds it, and would answer readiness."""
    holders = listening_pids(port)
    if holders and not holders & set(group_members(pgid)):
        raise NotReady(
            f"port {port} is answered by process(es) {sorted(holders)}, not by the server started (group {pgid}): "
            "another server took the port; stop it or give server.port"
        )
