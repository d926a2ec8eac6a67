"""Names from a plan become file names that stay where they are written; mount targets are normalised."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.container import check_target
from harness.paths import file_name, inside, project_root
from harness.results.case import CaseResult
from harness.results.sink import CaseSink


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("p16-in64-out32", "p16-in64-out32"),
        ("org/name", "org_name"),
        ("../../etc/passwd", ".._.._etc_passwd"),
        ("..", "_.."),
        (".", "_."),
        ("", "_"),
        ("mmlu abstract:algebra", "mmlu_abstract_algebra"),
    ],
)
def test_a_plan_string_becomes_one_file_name_component(name: str, expected: str) -> None:
    assert file_name(name) == expected


def test_a_case_id_with_dots_and_slashes_is_written_inside_the_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = CaseResult("serving.static", "../../escaped", {}, {})
    CaseSink.for_run(run, {}).write(result)
    written = [p for p in tmp_path.rglob("*.json")]
    assert written == [run / "serving" / "static" / ".._.._escaped.json"]
    assert inside(run, "logs", "vllm-org/model.log") == run / "logs" / "vllm-org_model.log"


@pytest.mark.parametrize(
    "target", ["/home/ma-user", "/home/x/../ma-user", "/home/ma-user/work", "/home", "/", "/home/"]
)
def test_a_mount_that_would_hide_the_images_home_is_refused(target: str) -> None:
    with pytest.raises(ValueError, match="would hide the image's /home/ma-user"):
        check_target(target)


def test_a_relative_mount_target_is_refused_and_others_pass() -> None:
    with pytest.raises(ValueError, match="not an absolute path"):
        check_target("data")
    check_target("/data/models")
    check_target("/home/other")


def test_the_cli_finds_the_checkout_from_a_sub_folder(tmp_path: Path) -> None:
    """`llmqual report latest` from a sub-folder found nothing (it looked in ./reports) and a model was rebuilt in
    ./.cache: the CLI now uses the checkout's folders, as pytest's rootdir does."""
    repo = Path(__file__).resolve().parents[2]
    assert project_root(repo / "docs") == repo
    assert project_root(repo / "harness" / "report") == repo
    assert project_root(tmp_path) == tmp_path.resolve(), "outside a checkout: the current folder"
