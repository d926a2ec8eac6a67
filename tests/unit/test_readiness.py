"""Readiness waits with a deadline, watches the process, and needs the model listed (scripted clock)."""

from __future__ import annotations

import urllib.error
from typing import Any

import pytest

from harness.server import readiness
from harness.server.endpoint import Endpoint
from harness.server.readiness import NotReady, wait_until_ready

ENDPOINT = Endpoint("http://127.0.0.1:1", "tiny")


class ScriptedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def never_answers(*_: Any, **__: Any) -> Any:
    raise urllib.error.URLError("connection refused")


def test_deadline_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ScriptedClock()
    monkeypatch.setattr(readiness, "require_ok", never_answers)
    with pytest.raises(NotReady, match=r"not ready within 30 s \(.*connection refused"):
        wait_until_ready(ENDPOINT, 30, lambda: None, clock=clock, sleep=clock.sleep)
    assert 30 < clock.now <= 32


def test_a_dead_process_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ScriptedClock()
    monkeypatch.setattr(readiness, "require_ok", never_answers)
    exits = iter([None, None, 3])
    with pytest.raises(NotReady, match="exited with code 3"):
        wait_until_ready(ENDPOINT, 600, lambda: next(exits), clock=clock, sleep=clock.sleep)
    assert clock.now == 2


def test_ready_only_once_the_model_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ScriptedClock()
    listings = iter([{}, {"other": {}}, {"tiny": {"max_model_len": 64}}])
    monkeypatch.setattr(readiness, "require_ok", lambda *a: None)
    monkeypatch.setattr(readiness, "served_models", lambda *a: next(listings))
    entry = wait_until_ready(ENDPOINT, 600, lambda: None, clock=clock, sleep=clock.sleep)
    assert entry == {"max_model_len": 64}
    assert clock.now == 2


def test_endpoint_urls_and_headers() -> None:
    assert ENDPOINT.url("/v1/models") == "http://127.0.0.1:1/v1/models"
    assert "Authorization" not in ENDPOINT.headers()
    assert Endpoint("http://h", "m", api_key="k").headers()["Authorization"] == "Bearer k"


@pytest.mark.parametrize(
    ("key", "said"), [(None, "without an API key"), ("wrong-key", "with the API key it was given")]
)
def test_a_server_that_wants_another_key_fails_at_once(
    monkeypatch: pytest.MonkeyPatch, key: str | None, said: str
) -> None:
    clock = ScriptedClock()

    def unauthorised(url: str, *_: Any, **__: Any) -> Any:
        raise urllib.error.HTTPError(url, 401, "Unauthorized", None, None)  # type: ignore[arg-type]

    monkeypatch.setattr(readiness, "require_ok", lambda *_, **__: None)
    monkeypatch.setattr(readiness, "served_models", unauthorised)
    endpoint = Endpoint("http://127.0.0.1:1", "tiny", key)
    with pytest.raises(NotReady, match=f"HTTP 401 from .* {said}: set the key .*VLLM_API_KEY"):
        wait_until_ready(endpoint, 600, lambda: None, clock=clock, sleep=clock.sleep)
    assert clock.now == 0, "no waiting: a key does not appear by itself"
