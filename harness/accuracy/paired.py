"""Two evaluations of the same questions compared question by question, from lm-eval's samples files.

Two scores can agree by coincidence (each engine right on different questions) or disagree for reasons that have
nothing to do with the engines (a checkpoint at the edge of what it learnt moves with every rounding). Comparing
the answers per question says what a comparison of one checkpoint on two engines means to say: how often they
gave the same answer, and which questions they did not. An answer is what lm-eval scored: the filtered response
of a generation task, the index of the most likely choice of a log-likelihood task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.accuracy.evaluate import AccuracyError


@dataclass(frozen=True)
class Answer:
    text: str
    score: float  # the task's per-question metric (exact_match, acc): 1.0 right, 0.0 wrong


@dataclass(frozen=True)
class Paired:
    """The per-question comparison of a first and a second evaluation of the same questions."""

    questions: int
    same_answer: int
    both_right: int
    only_first_right: int
    only_second_right: int
    differing: tuple[tuple[int, str, str], ...]  # (doc id, first answer, second answer), in doc order

    @property
    def agreement(self) -> float:
        """The share of questions both evaluations answered alike."""
        return self.same_answer / self.questions

    def describe(self, limit: int = 5) -> str:
        shown = "; ".join(f"doc {doc}: {a!r} vs {b!r}" for doc, a, b in self.differing[:limit])
        more = f" (and {len(self.differing) - limit} more)" if len(self.differing) > limit else ""
        return (
            f"{self.same_answer} of {self.questions} answers the same ({self.agreement:.0%}); right in both "
            f"{self.both_right}, only in the first {self.only_first_right}, only in the second "
            f"{self.only_second_right}" + (f"; differing: {shown}{more}" if shown else "")
        )


def _answer_text(filtered: Any) -> str:
    """A generation's filtered text, or the chosen index of a log-likelihood task's [(loglikelihood, greedy)]."""
    value = filtered[0] if isinstance(filtered, list) and len(filtered) == 1 else filtered
    if isinstance(value, list) and value and all(isinstance(c, list | tuple) and c for c in value):
        likelihoods = [float(choice[0]) for choice in value]
        return str(likelihoods.index(max(likelihoods)))
    return str(value)


def read_answers(path: Path, metric: str) -> dict[int, Answer]:
    """doc id -> answer and score, from an lm-eval samples file (one JSON document per line)."""
    answers: dict[int, Answer] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "doc_id" not in row or metric not in row:
            raise AccuracyError(
                f"{path}:{number}: no doc_id or {metric!r} in the sample (keys: {', '.join(sorted(row))}); "
                "give the metric the task scores and a samples file lm-eval wrote with --log_samples"
            )
        answers[int(row["doc_id"])] = Answer(_answer_text(row["filtered_resps"]), float(row[metric]))
    return answers


def pair(first: dict[int, Answer], second: dict[int, Answer]) -> Paired:
    """Compare two evaluations of the same questions; different question sets are an error, not a comparison."""
    if first.keys() != second.keys() or not first:
        only = sorted(first.keys() ^ second.keys())
        raise AccuracyError(
            f"the two evaluations did not answer the same questions ({len(first)} and {len(second)}; "
            f"doc ids in one only: {only[:10]}); run both with the same task, limit and seed"
        )
    docs = sorted(first)
    differing = tuple((d, first[d].text, second[d].text) for d in docs if first[d].text != second[d].text)
    right = [(first[d].score > 0, second[d].score > 0) for d in docs]
    return Paired(
        questions=len(docs),
        same_answer=len(docs) - len(differing),
        both_right=sum(a and b for a, b in right),
        only_first_right=sum(a and not b for a, b in right),
        only_second_right=sum(b and not a for a, b in right),
        differing=differing,
    )
