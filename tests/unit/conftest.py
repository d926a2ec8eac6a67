"""Shared unit-test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.plan import TinyModelSpec
from harness.load.tokens import Tokens
from harness.model.tiny import train_tokenizer


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
