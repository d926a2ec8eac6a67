"""lm-eval through a real vLLM server: the harness's scores equal the `lm_eval` command line's, run with the same
arguments; an unknown task stops a run before any server starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.accuracy.evaluate import EvalSettings, cli_arguments, evaluate, evaluate_checkpoint
from harness.accuracy.paired import pair, read_answers
from harness.accuracy.scores import scores
from harness.accuracy.tasks import materialise
from harness.paths import cache_root
from tests.integration.procs import REPO, harness_env, new_tag, pytest_command, tagged_processes
from tests.integration.servers import Served, tiny_server

pytestmark = pytest.mark.integration

LIMIT = 40
TASK_METRICS = {"llmqual_arith_gen": "exact_match", "llmqual_arith_mc": "acc"}  # each task's per-question metric


@pytest.mark.parametrize("task", ["llmqual_arith_gen", "llmqual_arith_mc"])
def test_scores_equal_the_lm_eval_command_line(served: Served, tmp_path: Path, task: str) -> None:
    include = materialise(REPO / "fixtures/lm_eval_tasks", cache_root(REPO))
    settings = EvalSettings(limit=LIMIT, num_concurrent=4, log_samples=True)
    ours = {
        (s.task, s.metric): s
        for s in scores(evaluate(served.endpoint, served.model_path, task, include, settings, tmp_path / "ours"))
    }

    line = cli_arguments(served.endpoint, served.model_path, task, include, settings)
    done = subprocess.run(
        [sys.executable, "-m", "lm_eval", *line, "--log_samples", "--output_path", str(tmp_path / "cli")],
        env={**harness_env(served.tag), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (written,) = (tmp_path / "cli").rglob("results_*.json")
    theirs = {(s.task, s.metric): s for s in scores(json.loads(written.read_text()))}

    print(f"\n{task}: harness {[(k[1], v.value, v.stderr) for k, v in ours.items()]}")
    print(f"{task}: lm_eval  {[(k[1], v.value, v.stderr) for k, v in theirs.items()]}")
    assert ours.keys() == theirs.keys()
    assert ours, "no metric reported"
    for key, score in ours.items():
        assert score.value == theirs[key].value, key
        assert score.stderr == theirs[key].stderr, key
    # Per document, the same answers: equal scores are not a coincidence of two different runs.
    (their_samples,) = (tmp_path / "cli").rglob(f"samples_{task}_*.jsonl")
    assert _answers(tmp_path / "ours" / "lm_eval_samples.jsonl") == _answers(their_samples)


def _answers(path: Path) -> dict[int, object]:
    """doc id -> filtered responses, as text (the CLI writes numbers and booleans as strings)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(rows) == LIMIT
    return {row["doc_id"]: _as_text(row["filtered_resps"]) for row in rows}


def _as_text(value: object) -> object:
    return [_as_text(v) for v in value] if isinstance(value, list | tuple) else str(value)


def test_an_unknown_task_stops_the_run_before_any_server(tmp_path: Path) -> None:
    plan = (
        (REPO / "fixtures/plans/cpu-tiny.yaml")
        .read_text()
        .replace("{name: llmqual_arith_mc}", "{name: llmqual_arith_mcq}")
    )
    plan = plan.replace("../lm_eval_tasks", str(REPO / "fixtures/lm_eval_tasks"))
    plan = plan.replace("../baselines", str(REPO / "fixtures/baselines"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(plan)
    tag = new_tag()
    done = subprocess.run(
        pytest_command(str(REPO / "suites/accuracy"), "-m", "cpu", "--plan", str(bad), "--reports-dir", str(tmp_path)),
        cwd=REPO, env=harness_env(tag), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "unknown lm-eval task 'llmqual_arith_mcq': did you mean 'llmqual_arith_mc'" in done.stderr
    assert tagged_processes(tag) == []
    assert not list(tmp_path.rglob("vllm-*.log")), "no server was started"


def test_a_broken_checkpoint_fails_the_accuracy_baseline(tmp_path: Path) -> None:
    """The planted fault: the CPU plan's accuracy suite run against the untrained model (random weights, the same
    name and tokenizer) must fail against the trained model's baseline, naming the regressed metrics."""
    with tiny_server(tmp_path / "server", untrained=True) as served:
        done = subprocess.run(
            pytest_command(
                str(REPO / "suites/accuracy/test_lm_eval.py"), "-m", "cpu",
                "--endpoint", served.endpoint.base_url, "--reports-dir", str(tmp_path / "reports"),
            ),
            cwd=REPO, env=harness_env(served.tag), capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "2 failed" in done.stdout, output[-3000:]
    for metric in ("exact_match,strict-match", "acc,none"):
        assert metric in done.stdout, f"the failure names {metric}"


def test_a_checkpoint_scored_in_process_scores_as_served(served: Served, tmp_path: Path) -> None:
    """The training suite's in-process path (transformers) and the served path (vLLM) answer one checkpoint's
    questions alike, compared question by question: greedy generations and float32 log-likelihoods of the same
    weights differ only in rounding, so an answer can differ only at a near tie (none seen here; one in LIMIT
    allowed, whichever CPU's kernels)."""
    include = materialise(REPO / "fixtures/lm_eval_tasks", cache_root(REPO))
    settings = EvalSettings(limit=LIMIT, num_concurrent=4, log_samples=True)
    for task, metric in TASK_METRICS.items():
        evaluate(served.endpoint, served.model_path, task, include, settings, tmp_path / "s" / task)
        evaluate_checkpoint(served.model_path, task, include, settings, tmp_path / "l" / task)
        paired = pair(
            read_answers(tmp_path / "s" / task / "lm_eval_samples.jsonl", metric),
            read_answers(tmp_path / "l" / task / "lm_eval_samples.jsonl", metric),
        )
        print(f"\n{task}, served vs in process: {paired.describe()}")
        assert paired.questions == LIMIT
        assert paired.same_answer >= LIMIT - 1, (task, paired.describe())


def test_the_plans_vllm_mode_runs_lm_eval_in_the_engine_and_scores_as_served(served: Served, tmp_path: Path) -> None:
    """`suites.accuracy.model: vllm` (the guides' `lm_eval --model vllm` line, with their model_args) runs the
    accuracy suite on vLLM's CPU build inside lm-eval, no server started, and answers the trained model's
    questions as the served path does, question by question (the same engine and weights: a near tie may flip one
    answer in a hundred)."""
    plan = (REPO / "fixtures/plans/cpu-tiny.yaml").read_text()
    engine = (
        "  accuracy:\n    model: vllm\n    log-samples: true\n"
        "    model-args: {gpu_memory_utilization: 0.7, add_bos_token: true}\n"
    )
    plan = plan.replace("  accuracy:\n", engine, 1)
    plan = plan.replace("../lm_eval_tasks", str(REPO / "fixtures/lm_eval_tasks"))
    plan = plan.replace("../baselines", str(REPO / "fixtures/baselines"))
    plan_file = tmp_path / "engine.yaml"
    plan_file.write_text(plan)
    tag = new_tag()
    done = subprocess.run(
        pytest_command(
            str(REPO / "suites/accuracy/test_lm_eval.py"), "-m", "cpu", f"--plan={plan_file}",
            f"--reports-dir={tmp_path / 'reports'}",
        ),
        cwd=REPO, env=harness_env(tag), capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout
    assert not list((tmp_path / "reports").rglob("vllm-*.log")), "no server was started"
    assert tagged_processes(tag) == [], "the engine's processes are gone"
    include = materialise(REPO / "fixtures/lm_eval_tasks", cache_root(REPO))
    for task, metric in TASK_METRICS.items():
        (in_engine,) = (tmp_path / "reports").rglob(f"lm_eval/{task}/**/samples_{task}_*.jsonl")
        settings = EvalSettings(num_concurrent=4, log_samples=True)
        evaluate(served.endpoint, served.model_path, task, include, settings, tmp_path / task)
        paired = pair(read_answers(in_engine, metric), read_answers(tmp_path / task / "lm_eval_samples.jsonl", metric))
        print(f"\n{task}, in engine vs served: {paired.describe()}")
        assert paired.questions == 100
        assert paired.same_answer >= 99, (task, paired.describe())
