"""Shared unit-test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from harness.config.model import TinyModelSpec
from harness.load.tokens import Tokens
from harness.model.tiny import train_tokenizer
from harness.runtime import metadata
from tests.fakes import install_fake_docker

# Property tests check behaviour, not speed: hypothesis's per-example deadline (200 ms) is a timing assertion that
# fails on two cores shared with a vLLM server (seen: test_verdicts_do_not_depend_on_units, DeadlineExceeded).
settings.register_profile("llmqual", deadline=None)
settings.load_profile("llmqual")


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    """The tiny model's real byte-level BPE tokenizer, trained on a small corpus (about a second)."""
    return Tokens(train_tokenizer(TinyModelSpec(corpus_sentences=300)), "tiny-test-tokenizer")


@pytest.fixture(scope="session")
def tokenizer_dir(tokens: Tokens, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tokenizer saved as a folder, for code that loads one by path."""
    folder = tmp_path_factory.mktemp("tokenizer")
    tokens.save(folder)
    return folder


@pytest.fixture
def docker_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake `docker` and `iptables` first on PATH (tests.fakes), and /proc for the pid the fake docker
    gives; returns the file where docker logs its calls (iptables logs to `iptables.log` beside it)."""
    bin_dir, log = install_fake_docker(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("FAKE_IPTABLES_LOG", str(tmp_path / "iptables.log"))
    monkeypatch.setattr(metadata, "PROC", tmp_path / "proc")
    return log
