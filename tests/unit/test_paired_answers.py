"""Per-question comparison of two lm-eval evaluations (harness/accuracy/paired.py), on samples files written the
way lm-eval writes them: generation tasks' filtered text, log-likelihood tasks' [loglikelihood, greedy] per choice
(as numbers from the library, as strings from the command line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.accuracy.evaluate import AccuracyError
from harness.accuracy.paired import pair, read_answers


def samples(path: Path, rows: list[tuple[int, object, float]], metric: str = "exact_match") -> Path:
    path.write_text("".join(json.dumps({"doc_id": d, "filtered_resps": r, metric: s}) + "\n" for d, r, s in rows))
    return path


def test_generation_answers_are_compared_per_question(tmp_path: Path) -> None:
    first = read_answers(samples(tmp_path / "a", [(0, ["7"], 1.0), (1, ["5"], 0.0), (2, ["9"], 1.0)]), "exact_match")
    second = read_answers(samples(tmp_path / "b", [(2, ["9"], 1.0), (1, ["0"], 1.0), (0, ["7"], 1.0)]), "exact_match")
    paired = pair(first, second)
    assert (paired.questions, paired.same_answer) == (3, 2)
    assert (paired.both_right, paired.only_first_right, paired.only_second_right) == (2, 0, 1)
    assert paired.differing == ((1, "5", "0"),)
    assert paired.agreement == pytest.approx(2 / 3)
    assert "2 of 3 answers the same" in paired.describe()
    assert "doc 1: '5' vs '0'" in paired.describe()


def test_equal_scores_from_different_answers_are_not_agreement(tmp_path: Path) -> None:
    """Both right on one question of two, on different questions: the scores agree (0.5), the engines do not."""
    first = read_answers(samples(tmp_path / "a", [(0, ["7"], 1.0), (1, ["4"], 0.0)]), "exact_match")
    second = read_answers(samples(tmp_path / "b", [(0, ["8"], 0.0), (1, ["3"], 1.0)]), "exact_match")
    paired = pair(first, second)
    assert paired.agreement == 0.0
    assert (paired.only_first_right, paired.only_second_right) == (1, 1)


def test_a_loglikelihood_answer_is_the_most_likely_choice(tmp_path: Path) -> None:
    library = [[-3.0, False], [-0.5, True], [-2.0, False]]
    command_line = [["-3.0", "False"], ["-2.5", "False"], ["-0.25", "True"]]
    first = read_answers(samples(tmp_path / "a", [(0, library, 1.0)], "acc"), "acc")
    second = read_answers(samples(tmp_path / "b", [(0, command_line, 0.0)], "acc"), "acc")
    assert first[0].text == "1"
    assert second[0].text == "2"
    assert pair(first, second).differing == ((0, "1", "2"),)


def test_different_questions_are_refused(tmp_path: Path) -> None:
    first = read_answers(samples(tmp_path / "a", [(0, ["7"], 1.0), (1, ["5"], 0.0)]), "exact_match")
    second = read_answers(samples(tmp_path / "b", [(0, ["7"], 1.0)]), "exact_match")
    with pytest.raises(AccuracyError, match=r"the same questions \(2 and 1; doc ids in one only: \[1\]\)"):
        pair(first, second)


def test_a_sample_without_the_metric_names_the_file_and_line(tmp_path: Path) -> None:
    path = samples(tmp_path / "s.jsonl", [(0, ["7"], 1.0)], "acc")
    with pytest.raises(AccuracyError, match=r"s.jsonl:1: no doc_id or 'exact_match'"):
        read_answers(path, "exact_match")
