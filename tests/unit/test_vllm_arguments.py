"""The vLLM command line a plan produces keeps `vllm serve`'s option names."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.config.plan import ServerSpec
from harness.errors import ServerStartError
from harness.server.vllm import VLLM_MODULE, ServerConfig, VLLMServer, vllm_arguments


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_every_plan_option_reaches_the_command_line() -> None:
    spec = ServerSpec.model_validate(
        {
            "served-model-name": "q",
            "tensor-parallel-size": 2,
            "max-model-len": 4096,
            "max-num-seqs": 256,
            "max-num-batched-tokens": 4096,
            "dtype": "bfloat16",
            "quantization": "awq",
            "kv-cache-dtype": "int8",
            "enable-prefix-caching": False,
            "speculative-config": {"method": "ngram", "num_speculative_tokens": 3},
            "extra-args": ["--seed", "7"],
        }
    )
    args = vllm_arguments(ServerConfig("npu", Path("/m/Qwen"), spec), "127.0.0.1", 8123)
    assert option(args, "--model") == "/m/Qwen"
    assert option(args, "--served-model-name") == "q"
    assert option(args, "--port") == "8123"
    assert option(args, "--tensor-parallel-size") == "2"
    assert option(args, "--max-model-len") == "4096"
    assert option(args, "--max-num-seqs") == "256"
    assert option(args, "--max-num-batched-tokens") == "4096"
    assert option(args, "--dtype") == "bfloat16"
    assert option(args, "--quantization") == "awq"
    assert option(args, "--kv-cache-dtype") == "int8"
    assert "--no-enable-prefix-caching" in args
    assert option(args, "--speculative-config") == '{"method": "ngram", "num_speculative_tokens": 3}'
    assert args[-2:] == ["--seed", "7"]


def test_unset_options_are_left_to_vllm() -> None:
    args = vllm_arguments(ServerConfig("cpu", Path("/m/tiny"), ServerSpec()), "127.0.0.1", 1)
    for absent in ("--max-model-len", "--quantization", "--speculative-config", "--enable-prefix-caching"):
        assert absent not in args
    assert option(args, "--served-model-name") == "tiny"  # the folder's name by default


def test_server_runs_the_api_server_module_with_the_given_python(tmp_path: Path) -> None:
    server = VLLMServer(ServerConfig("cpu", Path("/m/tiny"), ServerSpec()), tmp_path / "log", python="/py")
    assert server.argv(9)[:3] == ["/py", "-m", VLLM_MODULE]


def test_config_key_changes_with_what_changes_the_server() -> None:
    base = ServerConfig("cpu", Path("/m"), ServerSpec())
    assert base.key() == ServerConfig("cpu", Path("/m"), ServerSpec()).key()
    assert base.key() != ServerConfig("cpu", Path("/m"), ServerSpec(max_model_len=64)).key()
    assert base.key() != ServerConfig("cpu", Path("/m2"), ServerSpec()).key()
    assert base.key() != ServerConfig("cpu", Path("/m"), ServerSpec(), (("A", "1"),)).key()


def test_a_fixed_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ServerConfig("cpu", Path("/m"), ServerSpec(port=port))
        server = VLLMServer(config, tmp_path / "s.log", python="/nonexistent/python")
        with pytest.raises(ServerStartError, match=f"server.port {port} .* already in use"):
            server.__enter__()
    assert not (tmp_path / "s.log").exists(), "nothing was started"
