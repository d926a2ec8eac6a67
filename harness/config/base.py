"""The base of every plan section: frozen, strict about unknown keys, YAML keys with dashes like vLLM's CLI."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


def _dashed(name: str) -> str:
    return name.replace("_", "-")


class Frozen(BaseModel):
    """Immutable, strict about unknown keys; YAML keys use dashes like vLLM's command line."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=_dashed, populate_by_name=True)
