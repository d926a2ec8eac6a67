"""The request proxy in front of a prefill/decode deployment: one OpenAI-compatible endpoint for the suites.

For each completion or chat request (as vLLM's and vllm-ascend's disaggregated proxies do, e.g. vllm-ascend
0.11.0's `examples/disaggregated_prefill_v1/load_balance_proxy_server_example.py`):

1. a prefill pass on a prefill instance: the request with `stream: false`, `max_tokens` / `min_tokens` 1 and
   `kv_transfer_params {"do_remote_decode": true, "do_remote_prefill": false, remote_*: null}`, under one
   `X-Request-Id`;
2. the full request on a decode instance, with the `kv_transfer_params` the prefill answered (how the decode side
   finds the KV), streamed back as the decode instance streams it.

Instances are chosen round-robin or least-loaded (fewest requests in flight). Every answer carries the header
`X-LLMQual-Served-By: prefill=URL decode=URL` (the client records it). A failed prefill is returned as its status
and body, naming the instance. `/health` is 200 only when every instance's is; `/v1/models` is a decode
instance's; `/metrics` merges every instance's, each sample labelled `llmqual_instance="prefill-0"`, ...

Run as `python -m harness.deploy.proxy --port P --prefill URL... --decode URL...`; `ProxyServer` starts it as a
managed process and waits until it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web

from harness.client.openai import SERVED_BY

Policy = Literal["round-robin", "least-loaded"]
PREFILL_TRANSFER = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}
FORWARDED_HEADERS = ("Authorization", "X-Apig-AppCode")


@dataclass
class Pool:
    """Instances of one role, chosen by the policy."""

    role: str
    urls: list[str]
    policy: Policy = "round-robin"
    in_flight: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.in_flight = [0] * len(self.urls)
        self._turns = itertools.cycle(range(len(self.urls)))

    def pick(self) -> int:
        if self.policy == "least-loaded":
            return min(range(len(self.urls)), key=lambda i: (self.in_flight[i], i))
        return next(self._turns)


def prefill_body(body: dict[str, Any]) -> dict[str, Any]:
    """The prefill pass of a request: one token, not streamed, asking the connector to keep the KV for a decode."""
    first = {k: v for k, v in body.items() if k != "stream_options"}
    first.update(stream=False, max_tokens=1, min_tokens=1, kv_transfer_params=dict(PREFILL_TRANSFER))
    if "max_completion_tokens" in first:
        first["max_completion_tokens"] = 1
    return first


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?(\s.*)$")


def labelled(text: str, instance: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """An instance's Prometheus text as (family name, its HELP/TYPE lines) in order, and its samples with the
    `llmqual_instance` label added."""
    families: list[tuple[str, list[str]]] = []
    samples = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(maxsplit=3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                if not families or families[-1][0] != parts[2]:
                    families.append((parts[2], []))
                families[-1][1].append(line)
            continue
        match = _SAMPLE.match(line)
        if not match:
            continue
        name, labels, rest = match.groups()
        inner = labels[1:-1] if labels else ""
        label = f'llmqual_instance="{instance}"' + (f",{inner}" if inner else "")
        samples.append(f"{name}{{{label}}}{rest}")
    return families, samples


def merge_metrics(texts: Sequence[tuple[str, str]]) -> str:
    """Several instances' /metrics as one document: each family's HELP/TYPE once, then every instance's samples
    of it (a sample belongs to the family whose name it starts with)."""
    headers: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    loose: list[str] = []
    for instance, text in texts:
        families, lines = labelled(text, instance)
        for name, header in families:
            headers.setdefault(name, header)
            samples.setdefault(name, [])
        names = sorted(headers, key=len, reverse=True)
        for line in lines:
            family = next((n for n in names if line.startswith(n)), None)
            (samples[family] if family else loose).append(line)
    out = []
    for name, header in headers.items():
        out += header + samples[name]
    return "\n".join(out + loose) + "\n"


class Proxy:
    """The aiohttp application; `session` is created on startup."""

    def __init__(self, prefill: Sequence[str], decode: Sequence[str], policy: Policy = "round-robin") -> None:
        self.prefill = Pool("prefill", [u.rstrip("/") for u in prefill], policy)
        self.decode = Pool("decode", [u.rstrip("/") for u in decode], policy)
        self.session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self.generate)
        app.router.add_post("/v1/chat/completions", self.generate)
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/metrics", self.metrics)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))

    async def _close(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    def _instances(self) -> list[tuple[str, str]]:
        return [(f"{p.role}-{i}", url) for p in (self.prefill, self.decode) for i, url in enumerate(p.urls)]

    async def generate(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        body = await request.json()
        headers = {k: request.headers[k] for k in FORWARDED_HEADERS if k in request.headers}
        headers["X-Request-Id"] = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        p = self.prefill.pick()
        prefill_url = self.prefill.urls[p]
        self.prefill.in_flight[p] += 1
        try:
            async with self.session.post(prefill_url + request.path, json=prefill_body(body), headers=headers) as first:
                answer = await first.read()
                if first.status != 200:
                    detail = answer.decode("utf-8", "replace")[:2000]
                    return web.Response(status=first.status, text=f"prefill instance {prefill_url}: {detail}")
                transfer = (await first.json(content_type=None) or {}).get("kv_transfer_params")
        finally:
            self.prefill.in_flight[p] -= 1
        if transfer:
            body = {**body, "kv_transfer_params": transfer}
        d = self.decode.pick()
        decode_url = self.decode.urls[d]
        self.decode.in_flight[d] += 1
        try:
            async with self.session.post(decode_url + request.path, json=body, headers=headers) as full:
                response = web.StreamResponse(status=full.status)
                response.content_type = full.content_type
                response.headers[SERVED_BY] = f"prefill={prefill_url} decode={decode_url}"
                await response.prepare(request)
                async for chunk in full.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        finally:
            self.decode.in_flight[d] -= 1

    async def _get(self, url: str) -> tuple[int, bytes]:
        assert self.session is not None
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as answer:
                return answer.status, await answer.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return 0, str(exc).encode()

    async def health(self, request: web.Request) -> web.Response:
        answers = await asyncio.gather(*(self._get(url + "/health") for _, url in self._instances()))
        down = [
            f"{name} ({url}): {status or 'no answer'}"
            for (name, url), (status, _) in zip(self._instances(), answers, strict=True)
            if status != 200
        ]
        return web.Response(status=503, text="; ".join(down)) if down else web.Response(text="ok")

    async def models(self, request: web.Request) -> web.Response:
        status, body = await self._get(self.decode.urls[0] + "/v1/models")
        return web.Response(status=status or 502, body=body, content_type="application/json")

    async def metrics(self, request: web.Request) -> web.Response:
        answers = await asyncio.gather(*(self._get(url + "/metrics") for _, url in self._instances()))
        texts = [
            (name, body.decode("utf-8", "replace"))
            for (name, _), (status, body) in zip(self._instances(), answers, strict=True)
            if status == 200
        ]
        return web.Response(text=merge_metrics(texts), content_type="text/plain")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible proxy in front of prefill and decode instances")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefill", nargs="+", required=True, help="prefill instances' base URLs")
    parser.add_argument("--decode", nargs="+", required=True, help="decode instances' base URLs")
    parser.add_argument("--policy", choices=("round-robin", "least-loaded"), default="round-robin")
    args = parser.parse_args(argv)
    web.run_app(Proxy(args.prefill, args.decode, args.policy).app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
