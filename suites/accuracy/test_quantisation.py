"""Quantisation comparison: the same tasks on a reference and a quantised server configuration.

Both are server overrides of the plan (AWQ, SmoothQuant, GPTQ as `quantization`, kv-cache int8/fp8 as
`kv-cache-dtype`). A metric fails when the candidate is below the reference by more than k x the stderr of the
difference (the two runs' stderrs combined) and by more than the floor. Runs last: it starts other servers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.accuracy.baseline import against_reference
from harness.accuracy.evaluate import evaluate
from harness.accuracy.plan_cases import eval_settings
from harness.accuracy.scores import Score, scores
from harness.config.plan import Plan
from harness.paths import inside
from harness.plugins.recording import RecordCase
from harness.results.case import CaseResult
from harness.results.sink import CaseSink
from harness.server.endpoint import Endpoint

pytestmark = [pytest.mark.accuracy, pytest.mark.quant]


def test_quantised_accuracy_within_noise_of_reference(
    plan: Plan,
    serve: Callable[[Plan], Endpoint],
    tokenizer_path: Path,
    lm_eval_include: Path | None,
    case_sink: CaseSink,
    record_case: RecordCase,
) -> None:
    spec, accuracy = plan.suites.quant, plan.suites.accuracy
    if spec is None or accuracy is None:
        pytest.skip("the plan has no suites.quant comparison (it also needs suites.accuracy for its settings)")
    measured: dict[str, dict[tuple[str, str], Score]] = {}
    for side, overrides in (("reference", spec.reference), ("candidate", spec.candidate)):
        endpoint = serve(plan.server_with(overrides))
        measured[side] = {}
        for task in spec.tasks:
            out = inside(case_sink.directory, "accuracy", "quant", side, task.id)
            results = evaluate(endpoint, tokenizer_path, task.name, lm_eval_include, eval_settings(accuracy, task), out)
            measured[side].update({(s.task, s.metric): s for s in scores(results)})

    verdicts = []
    for key, reference in measured["reference"].items():
        candidate = measured["candidate"].get(key)
        assert candidate is not None, f"the candidate configuration reported no {key}"
        verdicts.append(against_reference(reference, candidate, spec.k, spec.floor))
    record_case(
        CaseResult(
            suite="accuracy.quant",
            case_id="-".join(f"{k}={v}" for k, v in sorted(spec.candidate.items())),
            config={"reference": spec.reference, "candidate": spec.candidate, "tasks": [t.name for t in spec.tasks]},
            metrics={
                f"{side}/{task}/{metric}": score.value
                for side, found in measured.items()
                for (task, metric), score in found.items()
            },
            # The suite asserts accuracy regressions whatever the plan's gates.enforce says.
            gates=[v.as_json() | {"enforced": True} for v in verdicts],
        )
    )
    regressions = [v.message for v in verdicts if v.failed]
    assert not regressions, "quantised configuration lost accuracy: " + "; ".join(regressions)
