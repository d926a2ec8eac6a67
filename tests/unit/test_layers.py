"""The layers stay one way: no module imports from a layer above its own (docs/architecture.md, "The layers").

Every `import harness.X` / `from harness.X import` in `harness/`, at module level or inside a function, is
checked. Entry points (the CLI, the pytest plugins, each package's `command.py` / `*_command.py` and
`fixtures.py`) sit on top and may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "harness"

# Bottom first. A package may import from its own layer and the ones before it.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundations", {"errors", "paths", "secrets", "metric_names", "runtime"}),
    ("statistics of verdicts", {"gates"}),
    ("configuration", {"config"}),
    ("the machine", {"platform", "fingerprint"}),
    ("engines and data", {"model", "client", "server", "deploy", "load", "metrics"}),
    ("results", {"results", "run"}),
    ("measurement", {"ab", "bench", "accuracy", "training", "capacity", "diffusion", "profile", "served", "explain"}),
    ("the report", {"report"}),
    ("entry points", {"cli", "plugin", "plugins"}),
]
RANK = {package: rank for rank, (_, packages) in enumerate(LAYERS) for package in packages}
TOP = len(LAYERS) - 1


def rank_of(module: Path, root: Path) -> int:
    parts = module.relative_to(root).with_suffix("").parts
    if parts[-1] in ("command", "fixtures") or parts[-1].endswith("_command"):
        return TOP
    return RANK[parts[0]]


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, harness package) of every harness import in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n.split(".")[1]) for n in names if n.startswith("harness.")]
    return found


def upward_imports(root: Path) -> list[str]:
    problems = []
    for module in sorted(root.rglob("*.py")):
        if module.parent == root and module.name == "__init__.py":
            continue
        mine = rank_of(module, root)
        for line, package in imported_packages(module.read_text()):
            if RANK[package] > mine:
                where = f"{module.relative_to(root.parent)}:{line}"
                problems.append(f"{where} ({LAYERS[mine][0]}) imports harness.{package} ({LAYERS[RANK[package]][0]})")
    return problems


def test_every_package_has_a_layer() -> None:
    packages = {p.stem for p in HARNESS.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    assert packages - {"__init__"} <= set(RANK), f"give these a layer in LAYERS: {packages - set(RANK)}"


def test_no_layer_imports_from_a_layer_above() -> None:
    problems = upward_imports(HARNESS)
    assert not problems, "imports running up the layers:\n" + "\n".join(problems)


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The check itself can fail: the gate statistics importing the report is flagged; the CLI importing it is not."""
    root = tmp_path / "harness"
    (root / "gates").mkdir(parents=True)
    (root / "gates" / "gate.py").write_text("def f():\n    from harness.report.html import render\n")
    (root / "cli.py").write_text("from harness.report.html import render\n")
    problems = upward_imports(root)
    assert problems == ["harness/gates/gate.py:2 (statistics of verdicts) imports harness.report (the report)"]


@pytest.mark.parametrize("source", ["import harness.report.html", "from harness.report import html"])
def test_both_import_forms_are_read(source: str) -> None:
    assert imported_packages(source) == [(1, "report")]


LONG_ENOUGH = 300  # lines; a longer module says why in its docstring ("300 lines: ...")


def long_modules(root: Path) -> list[str]:
    """Modules over LONG_ENOUGH lines whose docstring does not give the reason."""
    found = []
    for module in sorted(root.rglob("*.py")):
        text = module.read_text()
        if text.count("\n") > LONG_ENOUGH and "300 lines:" not in (ast.get_docstring(ast.parse(text)) or ""):
            found.append(f"{module.relative_to(root.parent)} ({text.count(chr(10))} lines)")
    return found


def test_no_module_is_long_without_a_reason() -> None:
    """A module is one concern a reader holds in their head; past 300 lines it is usually two."""
    found = long_modules(HARNESS) + long_modules(HARNESS.parent / "suites")
    assert not found, f"split these by concern, or say why not in the docstring ('300 lines: ...'): {found}"


def test_a_long_module_without_a_reason_is_found(tmp_path: Path) -> None:
    root = tmp_path / "harness"
    root.mkdir()
    (root / "long.py").write_text('"""One thing."""\n' + "x = 1\n" * 301)
    (root / "reasoned.py").write_text('"""One thing.\n\n300 lines: a table.\n"""\n' + "x = 1\n" * 301)
    assert long_modules(root) == ["harness/long.py (302 lines)"]
