"""Every error the harness raises on purpose is a HarnessError and appears in the tree of harness/errors.py, where
a reader looks for what can go wrong."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import harness.errors

HARNESS = Path(__file__).resolve().parents[2] / "harness"


def error_classes(root: Path) -> dict[str, list[str]]:
    """class name -> its base names, for every class whose name ends in Error, Failed, Timeout or Stopped."""
    found: dict[str, list[str]] = {}
    for module in root.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Error", "Failed", "Timeout", "Stopped")):
                found[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]
    return found


def harness_errors(classes: dict[str, list[str]]) -> set[str]:
    """The classes that descend from HarnessError (by name, through the classes found)."""
    members = {"HarnessError"}
    changed = True
    while changed:
        changed = False
        for name, bases in classes.items():
            if name not in members and members & set(bases):
                members.add(name)
                changed = True
    return members


def outside_the_tree(classes: dict[str, list[str]], tree: str) -> tuple[list[str], list[str]]:
    """(errors not descending from HarnessError, HarnessErrors the tree does not name)."""
    members = harness_errors(classes)
    stray = sorted(set(classes) - members)
    unnamed = sorted(name for name in members if not re.search(rf"(?<!\w){name}(?!\w)", tree))
    return stray, unnamed


def test_every_error_is_a_harness_error_in_the_tree() -> None:
    stray, unnamed = outside_the_tree(error_classes(HARNESS), harness.errors.__doc__ or "")
    assert not stray, f"raise HarnessErrors (or translate at the boundary): {stray}"
    assert not unnamed, f"add to the tree in harness/errors.py: {unnamed}"


def test_a_stray_or_unnamed_error_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        "class HarnessError(Exception): ...\nclass KnownError(HarnessError): ...\n"
        "class NewError(KnownError): ...\nclass LooseError(Exception): ...\n"
    )
    tree = "HarnessError\n  ├── KnownError  said\n"
    assert outside_the_tree(error_classes(tmp_path), tree) == (["LooseError"], ["NewError"])
