"""The API key a vLLM server requires, kept off its command line (it goes to the server as VLLM_API_KEY)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.server.vllm import ServerConfig


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
