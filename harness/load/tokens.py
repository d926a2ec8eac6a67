"""Token counting and exact-length prompt text for the served model's tokenizer.

Lengths are counted the way the server counts them: a prompt's length includes the special tokens the tokenizer
adds (a BOS), which is what `usage.prompt_tokens` reports for /v1/completions; an output's length does not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError

MAX_FIT_ROUNDS = 50


class TokenizerError(HarnessError):
    """The tokenizer could not be loaded or cannot make a prompt of the asked length."""


class Tokens:
    """A Hugging Face tokenizer with the few operations the workloads need."""

    def __init__(self, tokenizer: Any, name: str = "") -> None:
        self._tok = tokenizer
        self.name = name

    @classmethod
    def load(cls, path: str | Path) -> Tokens:
        """The tokenizer AutoTokenizer would load from `path`. A fast class named in its tokenizer_config.json is
        imported by itself: AutoTokenizer imports transformers' model registry (and torch) first, 5 s of CPU here
        against 0.8 s, paid by every `llmqual bench` run."""
        try:
            return cls(_fast_class(Path(path)).from_pretrained(str(path)), str(path))
        except (OSError, ValueError) as exc:
            raise TokenizerError(f"cannot load a tokenizer from {path}: {exc}") from exc

    def save(self, folder: Path) -> None:
        """Write the tokenizer's files into `folder` (loadable with `Tokens.load`)."""
        self._tok.save_pretrained(str(folder))

    def prompt_len(self, text: str) -> int:
        return len(self._tok(text).input_ids)

    def output_len(self, text: str) -> int:
        return len(self._tok(text, add_special_tokens=False).input_ids)

    def output_lens(self, texts: Sequence[str]) -> list[int]:
        """`output_len` of each text, in one batch (the Rust tokenizer encodes a batch at once)."""
        if not texts:
            return []
        return [len(ids) for ids in self._tok(list(texts), add_special_tokens=False).input_ids]

    def prompt_lens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self._tok(list(texts)).input_ids]

    def special_overhead(self) -> int:
        """Tokens the tokenizer adds around any prompt (a BOS)."""
        return self.prompt_len("")

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=True))

    @cached_property
    def plain_ids(self) -> np.ndarray:
        """Ids of ordinary tokens that decode on their own to clean text (no specials, no partial characters)."""
        special = set(self._tok.all_special_ids)
        keep = []
        for i in range(len(self._tok)):
            if i in special:
                continue
            text = self._tok.decode([i])
            if text.strip() and "\ufffd" not in text and text.isprintable():
                keep.append(i)
        if not keep:
            raise TokenizerError(f"tokenizer {self.name} has no plain tokens to build prompts from")
        return np.asarray(keep)

    def texts_of_length(self, count: int, length: int, rng: np.random.Generator) -> list[str]:
        """`count` random prompts of exactly `length` tokens, drawn as `text_of_length` draws them, the first
        encoding of all of them in one batch (most are exact at once; the others are fitted one by one)."""
        floor = self.prompt_len("")
        if length < floor:
            raise TokenizerError(f"a prompt of {length} tokens cannot hold the {floor} tokens of its prefix")
        drafts = [list(rng.choice(self.plain_ids, size=length - floor)) for _ in range(count)]
        texts = [self.decode(ids) for ids in drafts]
        for i, have in enumerate(self.prompt_lens(texts)):
            if have != length:
                texts[i] = self._fit(drafts[i], have, length, rng, "")
        return texts

    def _fit(self, ids: list[int], have: int, length: int, rng: np.random.Generator, prefix: str) -> str:
        """Adjust `ids` (whose text after `prefix` is `have` tokens) a token at a time to exactly `length`."""
        for _ in range(MAX_FIT_ROUNDS):
            if have > length:
                ids = ids[: max(0, len(ids) - (have - length))]
            else:
                ids += list(rng.choice(self.plain_ids, size=length - have))
            text = prefix + self.decode(ids)
            have = self.prompt_len(text)
            if have == length:
                return text
        raise TokenizerError(f"could not make a prompt of exactly {length} tokens with {self.name}")

    def text_of_length(self, length: int, rng: np.random.Generator, prefix: str = "") -> str:
        """Random text that, after `prefix`, makes a prompt of exactly `length` tokens (as the server counts them).

        Random tokens are decoded, re-encoded and adjusted until the count is exact: decoding and re-encoding
        merges some tokens, so the loop adds or trims a token at a time.
        """
        floor = self.prompt_len(prefix)
        if length < floor:
            raise TokenizerError(f"a prompt of {length} tokens cannot hold the {floor} tokens of its prefix")
        ids = list(rng.choice(self.plain_ids, size=length - floor))
        text = prefix + self.decode(ids)
        have = self.prompt_len(text)
        return text if have == length else self._fit(ids, have, length, rng, prefix)


FAST_BASES = ("PreTrainedTokenizerFast", "TokenizersBackend")


def _fast_class(folder: Path) -> Any:
    """The class AutoTokenizer picks for `folder` when its config names a fast one; AutoTokenizer otherwise."""
    import importlib

    try:
        named = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, ValueError):
        named = None
    if isinstance(named, str) and (named.endswith("Fast") or named in FAST_BASES):
        found = getattr(importlib.import_module("transformers"), named, None)
        if found is not None:
            return found
    from transformers import AutoTokenizer

    return AutoTokenizer
