"""Turning pydantic's validation errors into PlanErrors that name the file, the key and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import PlanError


def did_you_mean(word: str, choices: Iterable[str], n: int = 3, otherwise: str | None = None) -> str:
    """A 'did you mean' hint for `word` among `choices`; without a close match, `otherwise`, or else the list of
    what is allowed (for a short list; a long one, such as lm-eval's tasks, passes `otherwise`)."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=n, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return otherwise if otherwise is not None else "allowed keys: " + ", ".join(options)


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys a plan may use at `loc` (the aliases, as a user writes them)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = _field_by_key(current, str(part))
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside an annotation such as `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def plan_error_from(exc: ValidationError, path: str, model: type[BaseModel]) -> PlanError:
    """The first error of a validation failure, as a PlanError with a fix (every problem is listed)."""
    problems: list[tuple[str, str, str]] = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not str(p).startswith("function-")]
        key = ".".join(str(p) for p in loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            fix = did_you_mean(str(loc[-1]), _fields_at(model, loc[:-1]))
            problems.append((key, "unknown key", fix + " Remove or rename it."))
        elif kind == "missing":
            problems.append((key, "required key is missing", f"add '{loc[-1]}' to the plan"))
        else:
            given = err.get("input")
            shown = repr(given) if not isinstance(given, dict) else "a mapping"
            message = err["msg"].removeprefix("Value error, ")  # a validator's own message says what is wrong
            problems.append((key, f"{message} (got {shown})", "see fixtures/plans/README.md for valid values"))
    key, problem, fix = problems[0]
    if len(problems) > 1:
        others = "; ".join(f"{k}: {p}" for k, p, _ in problems[1:])
        problem = f"{problem} [and {len(problems) - 1} more: {others}]"
    return PlanError(path, key, problem, fix)
