"""Smoke suite: does the served model answer the OpenAI API correctly?

Checks behaviour, not speed: the model is listed; completions and chat completions work streamed and not, and
agree with each other under greedy decoding; `ignore_eos` with `max_tokens=N` yields exactly N tokens; a prompt
longer than the context is refused with HTTP 400 and the server keeps serving.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.client.openai import RequestRecord, Route, request_once
from harness.config.plan import Plan
from harness.plugins.markers import not_shown
from harness.server.endpoint import Endpoint, served_models

pytestmark = pytest.mark.smoke

PROMPT = "The engineer measures the throughput"
MESSAGES = [{"role": "user", "content": "What does the scheduler do?"}]


def _payload(route: Route, max_tokens: int, stream: bool) -> dict[str, Any]:
    prompt: dict[str, Any] = {"prompt": PROMPT} if route == "completions" else {"messages": MESSAGES}
    return {**prompt, "max_tokens": max_tokens, "temperature": 0.0, "ignore_eos": True, "stream": stream}


def _send(endpoint: Endpoint, plan: Plan, route: Route, payload: dict[str, Any]) -> RequestRecord:
    record = request_once(endpoint, route, payload, plan.suites.smoke.request_timeout_s)
    assert record.ok, f"{route} request failed: {record.error} {record.status} {record.error_detail}"
    return record


def test_models_lists_the_served_model(endpoint: Endpoint) -> None:
    models = served_models(endpoint.base_url, endpoint.headers())
    assert endpoint.model in models, f"/v1/models lists {sorted(models)}"


@pytest.mark.parametrize("route", ["completions", "chat"])
@pytest.mark.parametrize("max_tokens", [1, "plan"])
def test_ignore_eos_gives_exactly_max_tokens(
    endpoint: Endpoint, plan: Plan, route: Route, max_tokens: int | str
) -> None:
    n = plan.suites.smoke.max_tokens if max_tokens == "plan" else int(max_tokens)
    plain = _send(endpoint, plan, route, _payload(route, n, stream=False))
    streamed = _send(endpoint, plan, route, _payload(route, n, stream=True))
    for record in (plain, streamed):
        assert record.completion_tokens == n, f"usage says {record.completion_tokens} tokens, asked for {n}"
        assert record.finish_reason == "length"
        assert record.prompt_tokens is not None
        assert record.prompt_tokens > 0
    # Every event with choices is a generation step (its text may be empty: a byte-level token can end inside a
    # character). The server may fold steps whose text is empty into the next event, so there are at most N, and
    # at least one: the last step carries the finish reason.
    assert 1 <= len(streamed.content_times) <= n
    assert streamed.content_times == sorted(streamed.content_times)
    # Greedy decoding of the same prompt must not depend on the transport.
    assert streamed.text == plain.text
    assert streamed.prompt_tokens == plain.prompt_tokens


def test_token_id_prompt_is_counted_exactly(endpoint: Endpoint, plan: Plan) -> None:
    record = _send(endpoint, plan, "completions", {"prompt": [7] * 50, "max_tokens": 3, "ignore_eos": True})
    assert record.prompt_tokens == 50
    assert record.completion_tokens == 3


def test_prompt_longer_than_context_is_refused_and_server_keeps_serving(
    endpoint: Endpoint, plan: Plan, request: pytest.FixtureRequest
) -> None:
    if endpoint.max_model_len is None:
        not_shown(request, "the endpoint does not report max_model_len in /v1/models")
    too_long = {"prompt": [7] * (endpoint.max_model_len + 1), "max_tokens": 4}
    refused = request_once(endpoint, "completions", too_long, plan.suites.smoke.request_timeout_s)
    assert refused.status == 400, f"expected HTTP 400, got {refused.status} ({refused.error_detail[:200]})"
    assert refused.error == "http"
    after = _send(endpoint, plan, "completions", _payload("completions", 4, stream=False))
    assert after.completion_tokens == 4
