"""An OpenAI-compatible endpoint: where the suites send their requests, whoever runs the server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from harness.errors import EndpointError
from harness.secrets import redact_url, register

PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Endpoint:
    """A served model: `base_url` has no `/v1` suffix; `max_model_len` is what /v1/models reports."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)  # never in a repr: assertion messages reach the reports
    max_model_len: int | None = None
    # Huawei Cloud API Gateway's app code (the AscendCloud tools' --app-code), sent as X-Apig-AppCode: a credential.
    app_code: str | None = field(default=None, repr=False)
    deployment: str | None = None  # "1P1D", ... when the endpoint is a P/D deployment's request proxy

    def __post_init__(self) -> None:
        register(self.api_key)
        register(self.app_code)
        redact_url(self.base_url)  # registers a password in the URL

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.app_code:
            headers["X-Apig-AppCode"] = self.app_code
        return headers


def get_json(url: str, headers: dict[str, str], timeout_s: float) -> Any:
    """GET a JSON document; raises urllib's errors (callers translate them)."""
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def served_models(base_url: str, headers: dict[str, str], timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """The models /v1/models lists, by id."""
    listing = get_json(base_url.rstrip("/") + "/v1/models", headers, timeout_s)
    return {entry["id"]: entry for entry in listing.get("data", [])}


def connect_endpoint(
    base_url: str, api_key: str | None = None, model: str | None = None, app_code: str | None = None
) -> Endpoint:
    """An Endpoint for a server that already runs: checks it answers and serves `model` (or exactly one model)."""
    base_url = base_url.rstrip("/")
    if base_url.endswith("/v1"):
        base_url = base_url[: -len("/v1")]
    probe = Endpoint(base_url, model or "", api_key, app_code=app_code)
    try:
        models = served_models(base_url, probe.headers())
    except urllib.error.HTTPError as exc:
        hint = " (check --api-key / --app-code)" if exc.code in (401, 403) else ""
        raise EndpointError(f"{base_url}/v1/models answered HTTP {exc.code}{hint}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EndpointError(f"{base_url} is not reachable as an OpenAI-compatible server: {exc}") from exc
    if model is None:
        if len(models) != 1:
            raise EndpointError(f"{base_url} serves {sorted(models)}; name one with --served-model-name")
        model = next(iter(models))
    elif model not in models:
        raise EndpointError(f"{base_url} does not serve {model!r}; it serves {sorted(models)}")
    return Endpoint(base_url, model, api_key, models[model].get("max_model_len"), app_code)
