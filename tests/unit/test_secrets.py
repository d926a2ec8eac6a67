"""Secrets stay out of reprs, command lines and every file the harness writes."""

from __future__ import annotations

import json
from pathlib import Path

from harness.config.plan import ServerSpec
from harness.results.case import write_json
from harness.run import Run
from harness.secrets import redact, redact_url, scrub_folder
from harness.server.apikey import api_key_of
from harness.server.endpoint import Endpoint
from harness.server.vllm import ServerConfig, vllm_arguments

CANARY = "sk-canary-7f3a9c"


def test_an_endpoints_repr_does_not_show_its_key() -> None:
    endpoint = Endpoint("http://127.0.0.1:8000", "m", CANARY)
    assert CANARY not in repr(endpoint)
    assert endpoint.headers()["Authorization"] == f"Bearer {CANARY}"


def test_files_the_run_writes_mask_known_keys(tmp_path: Path) -> None:
    Endpoint("http://127.0.0.1:8000", "m", CANARY)  # learning the key registers it
    path = write_json(tmp_path / "case.json", {"detail": f"401 with Bearer {CANARY}"})
    run = Run.create(tmp_path / "reports", "r1")
    run.record({"nodeid": "t", "detail": f"endpoint key {CANARY}"})
    for written in (path, run.directory / "results.jsonl"):
        text = written.read_text()
        assert CANARY not in text
        assert "***" in text


def test_a_password_in_a_url_is_masked_and_remembered() -> None:
    url = redact_url("http://user:hunter2-pass@host:9000/v1")
    assert url == "http://user:***@host:9000/v1"
    assert redact("connect to http://user:hunter2-pass@host:9000") == "connect to http://user:***@host:9000"


def test_the_servers_key_goes_by_environment_not_by_command_line() -> None:
    for extra in (("--api-key", CANARY, "--seed", "1"), (f"--api-key={CANARY}", "--seed", "1")):
        config = ServerConfig("cpu", Path("/m"), ServerSpec(extra_args=extra))
        assert api_key_of(config) == CANARY
        args = vllm_arguments(config, "127.0.0.1", 8000)
        assert CANARY not in json.dumps(args)
        assert args[-2:] == ["--seed", "1"]
    from_env = ServerConfig("cpu", Path("/m"), ServerSpec(), env=(("VLLM_API_KEY", CANARY),))
    assert api_key_of(from_env) == CANARY


def test_a_key_in_a_file_written_by_another_tool_is_scrubbed(tmp_path: Path) -> None:
    Endpoint("http://127.0.0.1:8000", "m", CANARY)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "server.log").write_bytes(b"\xff raw bytes, then the key " + CANARY.encode() + b"\n")
    (tmp_path / "junit.xml").write_text("<testsuite/>")
    changed = scrub_folder(tmp_path)
    assert changed == [tmp_path / "logs" / "server.log"]
    assert (tmp_path / "logs" / "server.log").read_bytes() == b"\xff raw bytes, then the key ***\n"
