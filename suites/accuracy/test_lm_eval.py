"""Accuracy suite: lm-eval on the plan's model, one case per task of the plan, gated on baselines.

With `model: served` (the default) lm-eval runs as a library, `local-completions` against the server; with
`model: vllm` it loads the model into vLLM's engine itself (`lm_eval --model vllm`, as the ModelArts guides run
it), in a child process, without a server. Its results JSON is kept beside the harness's own case result.

A score regresses only when it is below its baseline by more than k x the stderr lm-eval reports and by more than
the plan's floor; the failure message gives both numbers and the margin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.accuracy.baseline import against_baselines, baseline_model, load_baselines
from harness.accuracy.evaluate import cli_arguments, evaluate
from harness.accuracy.in_engine import engine_environment, engine_model_args, evaluate_in_engine, lm_eval_arguments
from harness.accuracy.plan_cases import eval_settings
from harness.accuracy.scores import score_metrics, scores
from harness.config.plan import Plan
from harness.config.suites import TaskSpec
from harness.paths import inside
from harness.plugins.recording import RecordCase
from harness.results.case import CaseResult
from harness.results.sink import CaseSink
from harness.server.endpoint import Endpoint

pytestmark = pytest.mark.accuracy


def test_lm_eval(
    accuracy_case: TaskSpec,
    plan: Plan,
    request: pytest.FixtureRequest,
    tokenizer_path: Path,
    model_cache: Path,
    lm_eval_include: Path | None,
    case_sink: CaseSink,
    record_case: RecordCase,
) -> None:
    spec = plan.suites.accuracy
    assert spec is not None  # the case came from it
    settings = eval_settings(spec, accuracy_case)
    out = inside(case_sink.directory, "accuracy", "lm_eval", accuracy_case.id)  # beside the harness's <id>.json
    task = accuracy_case.name
    if spec.model == "vllm":  # no server: the engine inside lm-eval
        model_args = engine_model_args(plan, request.getfixturevalue("served_model"), spec.model_args)
        env = engine_environment(plan, model_cache)
        results = evaluate_in_engine(model_args, env, task, lm_eval_include, settings, out, spec.engine_timeout_s)
        model = model_args["pretrained"]
        command = lm_eval_arguments(model_args, task, lm_eval_include, settings, out / "lm_eval")
    else:
        endpoint: Endpoint = request.getfixturevalue("endpoint")
        results = evaluate(endpoint, tokenizer_path, task, lm_eval_include, settings, out)
        model = endpoint.model
        command = cli_arguments(endpoint, tokenizer_path, task, lm_eval_include, settings)
    found = scores(results)
    assert found, f"lm-eval reported no metric for {accuracy_case.name}"

    baselines = load_baselines(plan.relative(spec.baselines)) if spec.baselines else {}
    recorded_for = baseline_model(plan.relative(spec.baselines)) if spec.baselines else None
    served_name = model if spec.model != "vllm" else plan.server.served_model_name
    verdicts = against_baselines(found, baselines, spec.k, spec.floor, recorded_for, served_name)
    result = CaseResult(
        suite="accuracy.lm_eval",
        case_id=accuracy_case.id,
        config={
            "task": accuracy_case.name,
            "num_fewshot": accuracy_case.num_fewshot,
            "limit": settings.limit,
            "model": model,
            "lm_eval_model": spec.model,
            "lm_eval_command": ["lm_eval", *command],
            "lm_eval_results": str(out / "lm_eval_results.json"),
        },
        metrics=score_metrics(found),
        checks={"baseline_file": spec.baselines},
        # The suite asserts accuracy regressions whatever the plan's gates.enforce says.
        gates=[v.as_json() | {"enforced": True} for v in verdicts],
    )
    record_case(result)
    regressions = [v.message for v in verdicts if v.failed]
    assert not regressions, "accuracy regression: " + "; ".join(regressions)
