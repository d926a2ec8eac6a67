"""Accuracy pieces without a server: lm-eval result parsing, the stderr-aware check, task folders and names,
the log-probability probe (fake servers), and the offline data."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.accuracy.baseline import (
    Reference,
    against_baselines,
    against_reference,
    baseline_model,
    check,
    load_baselines,
)
from harness.accuracy.evaluate import AccuracyError, EvalSettings, cli_arguments, probe_prompt_logprobs
from harness.accuracy.offline_data import arithmetic_records, write
from harness.accuracy.scores import Score, scores
from harness.accuracy.tasks import TaskError, check_tasks, materialise
from harness.errors import PlanError
from harness.server.endpoint import Endpoint
from tests.fakes import fake_server_thread

REPO = Path(__file__).resolve().parents[2]

# The shape of an lm-eval results document: metric,filter keys, stderr may be "N/A".
RESULTS = {
    "results": {
        "gsm8k": {
            "alias": "gsm8k",
            "exact_match,strict-match": 0.75,
            "exact_match_stderr,strict-match": 0.0119,
            "exact_match,flexible-extract": 0.78,
            "exact_match_stderr,flexible-extract": "N/A",
        },
        "perplexity_task": {"word_perplexity,none": 12.5, "word_perplexity_stderr,none": "N/A"},
    },
    "higher_is_better": {"gsm8k": {"exact_match": True}, "perplexity_task": {"word_perplexity": False}},
    "n-shot": {"gsm8k": 5},
}


def test_scores_read_metric_filter_pairs_and_missing_stderr() -> None:
    found = {(s.task, s.metric): s for s in scores(RESULTS)}
    assert set(found) == {
        ("gsm8k", "exact_match,strict-match"),
        ("gsm8k", "exact_match,flexible-extract"),
        ("perplexity_task", "word_perplexity,none"),
    }
    assert found[("gsm8k", "exact_match,strict-match")].stderr == pytest.approx(0.0119)
    assert found[("gsm8k", "exact_match,flexible-extract")].stderr is None, '"N/A" is missing, not 0'
    assert found[("perplexity_task", "word_perplexity,none")].higher_is_better is False


@pytest.mark.parametrize(
    ("value", "stderr", "regressed"),
    [
        (0.70, 0.0119, True),  # 5 points below, allowed max(2 x 0.0119, 0.01) = 0.0238
        (0.73, 0.0119, False),  # 2 points below: within 2 x stderr
        (0.735, None, True),  # no stderr: only the floor protects, 1.5 points > 1 point
        (0.745, None, False),  # within the floor
        (0.80, 0.0119, False),  # better is never a regression
    ],
)
def test_regression_needs_both_k_stderr_and_floor(value: float, stderr: float | None, regressed: bool) -> None:
    verdict = check(Score("gsm8k", "exact_match,strict-match", value, stderr), Reference(0.75), k=2.0, floor=0.01)
    assert verdict.failed is regressed
    assert verdict.outcome == ("fail" if regressed else "pass")
    assert verdict.metric == "gsm8k/exact_match,strict-match"
    assert verdict.absolute
    assert "vs baseline 0.7500" in verdict.message
    assert "allowed" in verdict.message


def test_lower_is_better_metrics_regress_upwards() -> None:
    worse = check(Score("p", "word_perplexity,none", 14.0, None, higher_is_better=False), Reference(12.5), 2.0, 0.5)
    assert worse.failed
    assert worse.change == pytest.approx(-1.5)


def test_only_scores_with_a_baseline_are_judged() -> None:
    found = [Score("t", "acc,none", 0.40, 0.02), Score("t", "acc_norm,none", 0.5, 0.02), Score("u", "acc,none", 1, 0)]
    verdicts = against_baselines(found, {"t": {"acc,none": Reference(0.5, 0.02)}}, k=2.0, floor=0.01)
    assert [(v.metric, v.outcome) for v in verdicts] == [("t/acc,none", "fail")]
    assert verdicts[0].allowed == pytest.approx(0.04)


def test_a_baseline_of_another_model_judges_nothing(tmp_path: Path) -> None:
    """The planted fault: tiny-llama's baseline applied to another served model failed it as a regression."""
    path = tmp_path / "tiny-llama.yaml"
    path.write_text("model: tiny-llama\ntasks:\n  t:\n    acc,none: {value: 0.9, stderr: 0.02}\n")
    found = [Score("t", "acc,none", 0.40, 0.02)]
    recorded_for = baseline_model(path)
    assert recorded_for == "tiny-llama"
    same = against_baselines(found, load_baselines(path), 2.0, 0.01, recorded_for, "tiny-llama")
    assert [v.outcome for v in same] == ["fail"]
    other = against_baselines(found, load_baselines(path), 2.0, 0.01, recorded_for, "qwen2.5-7b")
    assert [v.outcome for v in other] == ["inconclusive"]
    assert "recorded for model 'tiny-llama', this run evaluated 'qwen2.5-7b'" in other[0].message
    assert baseline_model(tmp_path / "missing.yaml") is None


@pytest.mark.parametrize(
    ("reference", "candidate", "outcome"),
    [
        # 0.09 worse: the candidate's stderr alone (2 x 0.04 = 0.08) would fail it; the difference's stderr,
        # sqrt(0.03^2 + 0.04^2) = 0.05, allows 0.10.
        (Score("t", "acc,none", 0.60, 0.03), Score("t", "acc,none", 0.51, 0.04), "pass"),
        (Score("t", "acc,none", 0.60, 0.03), Score("t", "acc,none", 0.49, 0.04), "fail"),
        # Neither has a stderr: the floor alone.
        (Score("t", "acc,none", 0.60, None), Score("t", "acc,none", 0.585, None), "fail"),
        (Score("t", "acc,none", 0.60, None), Score("t", "acc,none", 0.595, None), "pass"),
    ],
)
def test_a_quantised_score_is_judged_against_the_reference_with_both_stderrs(
    reference: Score, candidate: Score, outcome: str
) -> None:
    verdict = against_reference(reference, candidate, k=2.0, floor=0.01)
    assert verdict.outcome == outcome, verdict.message
    assert verdict.baseline_mean == reference.value


def test_baseline_files_load_and_bad_ones_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "m.yaml"
    good.write_text(yaml.safe_dump({"model": "m", "tasks": {"t": {"acc,none": {"value": 0.5, "stderr": 0.05}}}}))
    assert load_baselines(good) == {"t": {"acc,none": Reference(0.5, 0.05)}}
    assert load_baselines(tmp_path / "absent.yaml") == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: {t: {acc: {stderr: 1}}}")
    with pytest.raises(PlanError, match="not a valid accuracy baseline file"):
        load_baselines(bad)


def test_unknown_task_names_list_close_matches() -> None:
    known = ["llmqual_arith_gen", "llmqual_arith_mc", "gsm8k", "mmlu"]
    check_tasks(["gsm8k", "llmqual_arith_mc"], known, "plan.yaml")
    with pytest.raises(
        TaskError, match=r"plan.yaml: unknown lm-eval task 'llmqual_arith_mcq': did you mean 'llmqual_arith_mc'"
    ):
        check_tasks(["llmqual_arith_mcq"], known, "plan.yaml")
    with pytest.raises(TaskError, match="no close match"):
        check_tasks(["zzzz"], known, "plan.yaml")


def test_materialised_task_folder_has_absolute_data_paths(tmp_path: Path) -> None:
    folder = materialise(REPO / "fixtures/lm_eval_tasks", tmp_path)
    for name in ("llmqual_arith_gen.yaml", "llmqual_arith_mc.yaml"):
        config = yaml.safe_load((folder / name).read_text())
        data = Path(config["dataset_kwargs"]["data_files"]["test"])
        assert data.is_absolute()
        assert data == REPO / "fixtures/lm_eval_tasks/data/arithmetic.jsonl"
    assert materialise(REPO / "fixtures/lm_eval_tasks", tmp_path) == folder, "reused while unchanged"
    with pytest.raises(TaskError, match="no lm-eval task YAML"):
        materialise(tmp_path / "empty", tmp_path)


def test_committed_offline_data_is_what_the_generator_makes(tmp_path: Path) -> None:
    assert write(tmp_path).read_bytes() == (REPO / "fixtures/lm_eval_tasks/data/arithmetic.jsonl").read_bytes()
    records = arithmetic_records()
    assert len(records) == 100
    for r in records:
        assert r["choices"][r["gold"]] == r["answer"] == str(r["a"] + r["b"])
        assert len(set(r["choices"])) == 4


def test_the_probe_accepts_prompt_logprobs_and_refuses_their_absence() -> None:
    with fake_server_thread("ok") as endpoint:
        probe_prompt_logprobs(endpoint)
    with (
        fake_server_thread("no_logprobs") as endpoint,
        pytest.raises(AccuracyError, match="no prompt log-probabilities"),
    ):
        probe_prompt_logprobs(endpoint)


def test_the_probe_names_an_unreachable_server() -> None:
    with pytest.raises(AccuracyError, match="refused a log-likelihood probe"):
        probe_prompt_logprobs(Endpoint("http://127.0.0.1:9", "m"), timeout_s=5)


def test_the_cli_line_carries_the_same_arguments() -> None:
    endpoint = Endpoint("http://127.0.0.1:8000", "tiny", max_model_len=1024)
    line = cli_arguments(endpoint, Path("/tok"), "llmqual_arith_mc", Path("/tasks"), EvalSettings(limit=10))
    args = dict(zip(line[::2], line[1::2], strict=False))
    assert args["--model"] == "local-completions"
    assert "base_url=http://127.0.0.1:8000/v1/completions" in args["--model_args"]
    assert "max_length=1024" in args["--model_args"]
    assert args["--limit"] == "10"
