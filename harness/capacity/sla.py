"""The SLO rate search on a real server: each step a dynamic case under the measurement protocol, with repeats.

Every step gets prompts of its own (random, exact lengths, from a stream seeded by the rate), the protocol's
warm-up and window, and `repeats` measurements; its verdict is harness.gates.slo's on each objective. Steps are
appended to `<out>/steps.jsonl` as they end; the caller records the whole search (harness.results) and plots it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bench.cases import DynamicCase, LoadSettings, check_fits
from harness.bench.measure import measure_dynamic
from harness.bench.protocol import CALIBRATIONS, requests_per_repeat, stream
from harness.capacity.rate_search import RateBounds, RateSearch, RateStep, search_rate
from harness.config.sla import SLASpec
from harness.gates.slo import ObjectiveVerdict, objective_verdict
from harness.load.synthetic import random_samples
from harness.load.tokens import Tokens
from harness.metric_names import OUTPUT_THROUGHPUT, REQUEST_GOODPUT, REQUEST_THROUGHPUT, SUSTAINABLE_RATE_PER_S
from harness.metrics.serving import SLO
from harness.results.case import CaseResult
from harness.server.endpoint import Endpoint

GOODPUT_RATIO = "goodput_ratio"  # requests meeting every per-request bound / requests completed, per repeat
KNEE_METRIC = SUSTAINABLE_RATE_PER_S  # gated like any throughput (higher is better)


def goodput_slo(spec: SLASpec) -> SLO:
    g = spec.goodput
    return SLO() if g is None else SLO(ttft_ms=g.ttft_ms, tpot_ms=g.tpot_ms, e2el_ms=g.e2el_ms)


def judge(spec: SLASpec, repeats: list[dict[str, Any]]) -> tuple[ObjectiveVerdict, ...]:
    """Each objective's verdict over one step's repeats (their metrics)."""
    verdicts = [
        objective_verdict(metric, bound, [r.get(metric) for r in repeats], spec.confidence)
        for metric, bound in spec.objectives.items()
    ]
    if spec.goodput is not None:
        ratios = [_ratio(r) for r in repeats]
        verdicts.append(objective_verdict(GOODPUT_RATIO, spec.goodput.min_ratio, ratios, spec.confidence, False))
    return tuple(verdicts)


def _ratio(metrics: dict[str, Any]) -> float | None:
    good, done = metrics.get(REQUEST_GOODPUT), metrics.get(REQUEST_THROUGHPUT)
    return None if good is None or not done else float(good) / float(done)


@dataclass
class StepMeasurer:
    """Measures one rate of the search against `endpoint`; keeps every step's full case for the run's results."""

    endpoint: Endpoint
    tokens: Tokens
    spec: SLASpec
    settings: LoadSettings
    cases: list[CaseResult]

    def samples_for(self, rate: float) -> int:
        """Enough fresh prompts for the protocol's warm-up, calibrations and every repeat at this rate."""
        per_repeat = requests_per_repeat(self.spec.num_prompts, 1, self.settings, None, rate)
        return math.ceil((1 + CALIBRATIONS + self.spec.repeats) * max(per_repeat, self.settings.warmup_requests) * 1.25)

    def __call__(self, rate: float) -> RateStep:
        spec = self.spec
        case = DynamicCase(rate, spec.num_prompts, slo=goodput_slo(spec))
        rng = stream(self.settings.seed, "capacity.sla", case.id, 0)
        samples = random_samples(self.tokens, self.samples_for(rate), spec.prompt_tokens, spec.output_tokens, rng)
        result = measure_dynamic(self.endpoint, self.tokens, case, self.settings, spec.repeats, samples, "random")
        self.cases.append(result)
        repeats = result.repeats or [result.metrics]
        problems = [*result.invalid_reasons]
        failed = [r["failed"] for r in repeats if r.get("failed")]
        if failed:
            problems.append(f"{sum(failed)} requests failed")
        if result.config.get("prompts_reused"):
            problems.append("prompts were reused (the sample pool ran out)")
        watched = [*spec.objectives, REQUEST_THROUGHPUT, OUTPUT_THROUGHPUT]
        metrics = {m: [r.get(m) for r in repeats] for m in watched}
        if spec.goodput is not None:
            metrics[GOODPUT_RATIO] = [_ratio(r) for r in repeats]
        return RateStep(rate, judge(spec, repeats), "; ".join(problems), metrics)


def run_sla_search(
    endpoint: Endpoint,
    tokens: Tokens,
    spec: SLASpec,
    settings: LoadSettings,
    out: Path,
    progress: Callable[[str], None] = print,
) -> tuple[RateSearch, list[CaseResult]]:
    """The whole search; every step appended to `out/steps.jsonl` as it ends."""
    check_fits(spec.prompt_tokens, spec.output_tokens, endpoint.max_model_len, "suites.sla's requests")
    out.mkdir(parents=True, exist_ok=True)
    cases: list[CaseResult] = []
    measurer = StepMeasurer(endpoint, tokens, spec, settings, cases)

    def told(step: RateStep) -> None:
        verdict = "sustainable" if step.sustainable else "not sustainable"
        progress(f"sla: {step.rate:g} req/s {verdict} ({step.reason})")
        with (out / "steps.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(step.as_json()) + "\n")

    bounds = RateBounds(spec.rate_low, spec.rate_high, spec.precision, spec.max_steps)
    return search_rate(bounds, measurer, told), cases


def knee_result(found: RateSearch, spec: SLASpec, cases: list[CaseResult]) -> CaseResult:
    """The search as one case: the knee (gated like a throughput), its interval, every step."""
    last = cases[-1] if cases else None
    config: dict[str, Any] = {
        "objectives": dict(spec.objectives),
        "goodput": spec.goodput.model_dump(by_alias=True) if spec.goodput else None,
        "confidence": spec.confidence,
        "repeats": spec.repeats,
        "prompt_tokens": spec.prompt_tokens,
        "output_tokens": spec.output_tokens,
        "rate_low": spec.rate_low,
        "rate_high": spec.rate_high,
        "precision": spec.precision,
        **({k: last.config[k] for k in ("model", "base_url", "tokenizer") if k in last.config} if last else {}),
    }
    return CaseResult(
        suite="capacity.sla",
        case_id="knee",
        config=config,
        metrics={
            KNEE_METRIC: found.knee,
            "first_unsustainable_rate_per_s": found.above,
            "steps": len(found.steps),
        },
        checks={
            "monotonic": found.monotonic,
            "stopped": found.stopped,
            "steps": [s.as_json() for s in found.steps],
        },
    )
