"""The docs a user reads hold what the code does: every plan key in the plan reference, every metric name in the
metric dictionary, nothing pointing outside the repository. Each check fails on a planted omission."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from harness import metric_names
from harness.config.plan import Plan
from harness.gates.policy import GATED_METRICS

REPO = Path(__file__).resolve().parents[2]
PLAN_REFERENCE = REPO / "fixtures/plans/README.md"
METRICS = REPO / "docs/metrics.md"


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models(argument)


def plan_keys() -> list[str]:
    """Every key a plan may have, dotted, as a user writes it (`suites.load.case-deadline-s`). A section type used
    in several places (a task list, a model section) has its keys listed once, where it is first met: elsewhere the
    reference names the key and says it takes the same section."""
    keys: list[str] = []
    seen: set[type[BaseModel]] = {Plan}
    queue: list[tuple[type[BaseModel], str]] = [(Plan, "")]
    while queue:
        model, prefix = queue.pop(0)
        for name, field in model.model_fields.items():
            key = f"{prefix}{field.alias or name}"
            keys.append(key)
            for inner in _models(field.annotation):
                if inner not in seen:
                    seen.add(inner)
                    queue.append((inner, key + "."))
    return keys


def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(^|[`\s,.({{\[]){re.escape(name)}([`\s,.:)}}\]]|$)")


def _lines_with_sections(text: str) -> list[tuple[str, str]]:
    """Each line with the text of the `## ` section it is in (a table's rows may leave the section's prefix out)."""
    sections = re.split(r"(?m)^(?=## )", text)
    return [(line, section) for section in sections for line in section.splitlines()]


def undocumented(keys: list[str], text: str) -> list[str]:
    """Keys the reference does not name. A key `a.b.c.d` is named by a line that holds its leaf `d` and, for some
    split of its parent, the parent's tail (`c`, or `b` and `c`) while its head (`a.b`, `a`) is named in that
    line's section: `| suites.training.llamafactory.stage |`, or `| llamafactory | stage, ... |` under a section
    that names `suites.training`."""
    lines = _lines_with_sections(text)
    missing = []
    for key in keys:
        parts = key.split(".")
        leaf, parent = _word(parts[-1]), parts[:-1]
        found = False
        for line, section in lines:
            if not leaf.search(line):
                continue
            for cut in range(len(parent) + 1):
                head, tail = ".".join(parent[:cut]), parent[cut:]
                if (not head or head in section) and all(_word(t).search(line) for t in tail):
                    found = True
                    break
            if found:
                break
        if not found:
            missing.append(key)
    return missing


def test_every_plan_key_is_in_the_plan_reference() -> None:
    missing = undocumented(plan_keys(), PLAN_REFERENCE.read_text())
    assert not missing, f"document these keys in {PLAN_REFERENCE.relative_to(REPO)}: {missing}"


def test_a_key_missing_from_the_reference_is_found() -> None:
    text = (
        "## Serving\n| `suites.load.seed` | ... |\n| `warmup-requests`, `min-seconds` | ... |\n"
        "## Training\n| `suites.training.launcher` | ... |\n| `llamafactory` | `stage`, `lora-rank` |\n"
    )
    keys = [
        "suites.load.seed",
        "suites.load.warmup-requests",
        "suites.load.min-seconds",
        "suites.load.client-cpus",  # planted: named nowhere
        "suites.training.llamafactory.stage",
        "suites.training.llamafactory.lora-target",  # planted
        "suites.training.warmup-requests",  # planted: named, but in another suite's section
    ]
    assert undocumented(keys, text) == [
        "suites.load.client-cpus",
        "suites.training.llamafactory.lora-target",
        "suites.training.warmup-requests",
    ]


def metric_constants() -> list[str]:
    return sorted(v for k, v in vars(metric_names).items() if k.isupper() and isinstance(v, str))


def test_every_metric_name_is_in_the_metric_dictionary() -> None:
    text = METRICS.read_text()
    named = set(metric_constants()) | {m for metrics in GATED_METRICS.values() for m in metrics}
    missing = sorted(m for m in named if f"`{m}`" not in text and not _as_statistic(m, text))
    assert not missing, f"define these metrics in docs/metrics.md: {missing}"


def _as_statistic(metric: str, text: str) -> bool:
    """`median_ttft_ms` is defined by the row of `<stat>_ttft_ms`."""
    statistic, _, rest = metric.partition("_")
    return statistic in metric_names.STATISTICS and f"`<stat>_{rest}`" in text


@pytest.mark.parametrize("document", ["README.md", *sorted(p.name for p in (REPO / "docs").glob("*.md"))])
def test_docs_point_only_inside_the_repository(document: str) -> None:
    path = REPO / document if document == "README.md" else REPO / "docs" / document
    text = path.read_text()
    assert not re.search(r"DESIGN\.md|STYLE\.md|\.\./shared|team repo", text), f"{document} points outside the repo"
    for linked in re.findall(r"`(docs/[\w./-]+\.md)`", text):
        assert (REPO / linked).is_file(), f"{document} links {linked}, which does not exist"


def named_paths(text: str) -> list[str]:
    """The repository paths a document names in backticks (`harness/...`, `suites/...`), placeholders left out."""
    found = re.findall(r"`((?:harness|suites|tests|fixtures|scripts|docs)/[\w./-]+)", text)
    return sorted({p.rstrip(".:/") for p in found if not re.search(r"[A-Z]{3,}|<", p)})


@pytest.mark.parametrize("document", ["README.md", "fixtures/plans/README.md", *sorted(
    f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")
)])  # fmt: skip
def test_docs_name_files_that_exist(document: str) -> None:
    missing = [p for p in named_paths((REPO / document).read_text()) if not (REPO / p).exists()]
    assert not missing, f"{document} names files that do not exist: {missing}"


def test_a_named_file_that_moved_is_found() -> None:
    assert named_paths("see `harness/session.py` and `harness/plugin.py`, `tools/NAME/check`") == [
        "harness/plugin.py",
        "harness/session.py",
    ]
