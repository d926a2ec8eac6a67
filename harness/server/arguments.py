"""A server configuration as `vllm serve` options, under vLLM's own names."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from harness.server.apikey import without_api_key

if TYPE_CHECKING:
    from harness.server.vllm import ServerConfig


def vllm_arguments(config: ServerConfig, host: str, port: int | str) -> list[str]:
    """The `vllm serve` options for `config`, under vLLM's own names (`port` as text: a rehearsal's `<free port>`)."""
    spec = config.spec
    args = [
        "--model", str(config.model_path),
        "--served-model-name", config.served_model_name,
        "--host", host,
        "--port", str(port),
        "--tensor-parallel-size", str(spec.tensor_parallel_size),
        "--pipeline-parallel-size", str(spec.pipeline_parallel_size),
        "--dtype", spec.dtype,
        "--kv-cache-dtype", spec.kv_cache_dtype,
    ]  # fmt: skip
    optional: dict[str, int | str | None] = {
        "--max-model-len": spec.max_model_len,
        "--max-num-seqs": spec.max_num_seqs,
        "--max-num-batched-tokens": spec.max_num_batched_tokens,
        "--quantization": spec.quantization,
        "--data-parallel-size": spec.data_parallel_size if spec.data_parallel_size > 1 else None,
    }
    for option, value in optional.items():
        if value is not None:
            args += [option, str(value)]
    if spec.enable_prefix_caching is not None:
        args.append("--enable-prefix-caching" if spec.enable_prefix_caching else "--no-enable-prefix-caching")
    if spec.speculative_config is not None:
        args += ["--speculative-config", json.dumps(spec.speculative_config, sort_keys=True)]
    if spec.kv_transfer_config is not None:
        args += ["--kv-transfer-config", json.dumps(spec.kv_transfer_config, sort_keys=True)]
    return args + without_api_key(spec.extra_args)
