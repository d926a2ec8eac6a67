"""The P/D request proxy as its own process in front of fake instances (named fakes: they record what the proxy
sends, which a real engine does not show): the prefill pass and the decode pass, routing, health, metrics, errors,
and nothing left running."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from harness.client.openai import request_once
from harness.deploy.proxy import merge_metrics, prefill_body
from harness.deploy.proxy_server import ProxyServer
from harness.errors import ServerStartError
from harness.runtime.process import group_members
from harness.server.prometheus import counter_totals, scrape


class FakeInstance:
    """A fake vLLM instance that records every request: non-streamed answers carry kv_transfer_params, streamed
    ones three events; /metrics has one counter."""

    def __init__(self, name: str, healthy: bool = True, prefill_status: int = 200) -> None:
        self.name, self.healthy, self.prefill_status = name, healthy, prefill_status
        self.seen: list[tuple[dict[str, Any], CIMultiDict[str]]] = []

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append((body, CIMultiDict(request.headers)))
        if not body.get("stream"):
            if self.prefill_status != 200:
                return web.Response(status=self.prefill_status, text="out of blocks")
            transfer = {"remote_block_ids": [7], "remote_engine_id": self.name}
            return web.json_response({"choices": [{"text": "x"}], "kv_transfer_params": transfer})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for text in ("a", "b", "c"):
            await response.write(f"data: {json.dumps({'choices': [{'index': 0, 'text': text}]})}\n\n".encode())
        usage = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 3}}
        await response.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        return response

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 500)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m", "max_model_len": 512}]})

    async def metrics(self, request: web.Request) -> web.Response:
        text = "# HELP vllm:prompt_tokens_total n\n# TYPE vllm:prompt_tokens_total counter\n"
        text += 'vllm:prompt_tokens_total{m="m"} 5.0\n'  # a counter family as vLLM writes one
        return web.Response(text=text)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self.generate)
        app.router.add_post("/v1/chat/completions", self.generate)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/metrics", self.metrics)
        return app


@contextmanager
def serving(*instances: FakeInstance) -> Iterator[list[str]]:
    """The fakes on one event loop in a thread; their base URLs."""
    loop = asyncio.new_event_loop()
    urls: list[str] = []
    runners: list[web.AppRunner] = []
    started = threading.Event()

    async def start() -> None:
        for instance in instances:
            runner = web.AppRunner(instance.app())
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            urls.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert started.wait(10)
    try:
        yield urls
    finally:
        for runner in runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_the_prefill_pass_is_one_token_asking_to_keep_the_kv() -> None:
    body = {"prompt": "p", "max_tokens": 64, "stream": True, "stream_options": {"include_usage": True}}
    first = prefill_body(body)
    assert first["stream"] is False
    assert (first["max_tokens"], first["min_tokens"]) == (1, 1)
    assert first["kv_transfer_params"]["do_remote_decode"] is True
    assert first["kv_transfer_params"]["do_remote_prefill"] is False
    assert "stream_options" not in first
    assert body["max_tokens"] == 64, "the caller's body is not changed"


def test_a_request_is_prefilled_on_one_role_and_decoded_on_the_other(tmp_path: Path) -> None:
    prefill, decode_a, decode_b = FakeInstance("p0"), FakeInstance("d0"), FakeInstance("d1")
    with (
        serving(prefill, decode_a, decode_b) as (p, da, db),
        ProxyServer([p], [da, db], "m", tmp_path / "proxy.log") as proxy,
    ):
        pid = proxy.process.pid if proxy.process else 0
        records = [
            request_once(proxy.endpoint, "completions", {"prompt": f"q{i}", "max_tokens": 3, "stream": True})
            for i in range(4)
        ]
    assert [r.ok for r in records] == [True] * 4, [r.error_detail for r in records]
    assert [r.completion_tokens for r in records] == [3] * 4
    assert [r.served_by for r in records] == [f"prefill={p} decode={da}", f"prefill={p} decode={db}"] * 2
    assert len(prefill.seen) == 4
    assert len(decode_a.seen) == len(decode_b.seen) == 2, "round-robin over the decode instances"
    first_body, first_headers = prefill.seen[0]
    second_body, second_headers = decode_a.seen[0]
    assert first_body["max_tokens"] == 1
    assert first_body["stream"] is False
    assert second_body["max_tokens"] == 3
    assert second_body["stream"] is True
    assert second_body["kv_transfer_params"] == {"remote_block_ids": [7], "remote_engine_id": "p0"}
    assert first_headers["X-Request-Id"] == second_headers["X-Request-Id"], "one request id for both passes"
    assert group_members(pid) == [], "the proxy's process group is gone"


def test_health_names_the_instance_that_is_down_and_the_proxy_does_not_start(tmp_path: Path) -> None:
    down = pytest.raises(ServerStartError, match=r"decode-0 \(http://127.0.0.1:\d+\): 500")
    with serving(FakeInstance("p0"), FakeInstance("d0", healthy=False)) as (p, d), down:
        ProxyServer([p], [d], "m", tmp_path / "proxy.log", ready_timeout_s=3).__enter__()


def test_a_failed_prefill_is_returned_naming_the_instance(tmp_path: Path) -> None:
    instances = serving(FakeInstance("p0", prefill_status=503), FakeInstance("d0"))
    with instances as (p, d), ProxyServer([p], [d], "m", tmp_path / "proxy.log") as proxy:
        record = request_once(proxy.endpoint, "completions", {"prompt": "q", "max_tokens": 3, "stream": True})
        totals = scrape(proxy.endpoint)
    assert record.status == 503
    assert f"prefill instance {p}: out of blocks" in record.error_detail
    assert totals == {"vllm:prompt_tokens": 10.0}, "every instance's counters, summed by the harness's scrape"


def test_metrics_merge_keeps_one_header_per_family_and_labels_every_sample() -> None:
    text = '# HELP c_total n\n# TYPE c_total counter\nc_total{a="1"} 2.0\n# TYPE g gauge\ng 1.0\n'
    merged = merge_metrics([("prefill-0", text), ("decode-0", text)])
    assert merged.count("# TYPE c_total counter") == 1
    assert 'c_total{llmqual_instance="decode-0",a="1"} 2.0' in merged
    assert 'g{llmqual_instance="prefill-0"} 1.0' in merged
    assert counter_totals(merged) == {"c": 4.0}
