"""A plan's serving sections as benchmark cases, settings and workloads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from harness.bench.cases import DynamicCase, LoadSettings, StaticCase, dynamic_cases, static_cases
from harness.config.plan import Plan
from harness.config.suites import DatasetSpec, DynamicSpec
from harness.errors import PlanError
from harness.load.convert import LengthDistribution, generate_records
from harness.load.datasets import DatasetError, load_dataset, select
from harness.load.samples import Sample
from harness.load.synthetic import random_samples
from harness.load.tokens import Tokens
from harness.metrics.serving import SLO
from harness.results.case import write_json


def load_settings(plan: Plan) -> LoadSettings:
    """The plan's `suites.load` settings, with its server's speculative k."""
    return LoadSettings.from_spec(plan.suites.load, speculative_tokens(plan))


def speculative_tokens(plan: Plan) -> int:
    """The k of the plan's speculative decoding (its num_speculative_tokens), or -1 without it: with k, every case
    also reports the AscendCloud tools' per-request acceptance rates (harness.metrics.spec)."""
    config = plan.server.speculative_config or {}
    k = config.get("num_speculative_tokens")
    return int(k) if isinstance(k, int) and k >= 0 else -1


def plan_static_cases(plan: Plan) -> list[StaticCase]:
    spec = plan.suites.static
    if spec is None:
        return []
    return static_cases(spec.parallel_num, spec.prompt_tokens, spec.output_tokens, spec.epochs)


def plan_dynamic_cases(plan: Plan) -> list[DynamicCase]:
    spec = plan.suites.dynamic
    if spec is None:
        return []
    slo = SLO(spec.slo.ttft_ms, spec.slo.tpot_ms, spec.slo.e2el_ms)
    return dynamic_cases(spec.request_rate, spec.num_prompts, spec.burstiness, spec.max_concurrency, slo)


def _generated_file(spec: DatasetSpec, tokens: Tokens, cache: Path) -> Path:
    """The plan's generated custom dataset, made once per (generator settings, tokenizer) and cached."""
    assert spec.generate is not None
    gen = spec.generate
    key = hashlib.sha256(json.dumps([gen.model_dump(), tokens.name], sort_keys=True).encode()).hexdigest()[:16]
    path = cache / "datasets" / f"custom-{key}.json"
    if not path.exists():
        records = generate_records(
            tokens,
            gen.count,
            LengthDistribution(gen.input.mean, gen.input.std, gen.input.min, gen.input.max),
            LengthDistribution(gen.output.mean, gen.output.std, gen.output.min, gen.output.max),
            np.random.default_rng(gen.seed),
        )
        write_json(path, records)
    return path


def dynamic_workload(plan: Plan, spec: DynamicSpec, tokens: Tokens, cache: Path) -> tuple[str, list[Sample]]:
    """(dataset label, every record that passes the filters) for the dynamic cases; each measurement takes its own
    slice (harness.bench.protocol.dataset_slice). A random dataset has enough prompts for every case's warm-up and
    repeats to be fresh. Dataset problems are PlanErrors naming the key."""
    data = spec.dataset
    if data.type == "random":
        rng = np.random.default_rng(plan.suites.load.seed)
        count = (plan.gates.repeats + 1) * sum(max(n, plan.suites.load.min_requests) for n in spec.num_prompts)
        samples = random_samples(tokens, count, data.random_input_len, data.random_output_len, rng)
        return f"random-{data.random_input_len}-{data.random_output_len}", samples
    if data.generate is not None:
        path = _generated_file(data, tokens, cache)
        label = f"custom-generated-{data.generate.count}"
    else:
        assert data.path is not None
        given = Path(data.path).expanduser()
        path = given if given.is_absolute() else Path(plan.source).parent / given
        label = path.name
    try:
        records = load_dataset(path, data.type, tokens)
        return label, select(records, len(records), spec.max_prompt_tokens, spec.max_tokens, spec.fixed_output_len)
    except DatasetError as exc:
        raise PlanError(
            plan.source, "suites.dynamic.dataset", str(exc), "point path at a readable dataset file"
        ) from exc
