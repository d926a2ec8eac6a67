"""A run with every kind of case, for the report's tests: what the CPU main job writes, in miniature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.rundata import RunData
from harness.results.case import CaseResult

HOSTILE = '<script>alert("x")</script> & <b>bold</b>'  # text from a model or a log must come out escaped


def _doc(result: CaseResult, test: str) -> dict[str, Any]:
    result.test = test
    return result.document({"platform": "cpu", "device": "test cpu", "packages": {"vllm": "0.32.0"}})


def serving_docs() -> list[dict[str, Any]]:
    docs = []
    for parallel in (1, 4, 16):
        for prompt, output in ((64, 32), (256, 64)):
            docs.append(
                _doc(
                    CaseResult(
                        "serving.static",
                        f"p{parallel}-in{prompt}-out{output}",
                        {"parallel": parallel, "prompt_tokens": prompt, "output_tokens": output},
                        {
                            "output_throughput": 100.0 * parallel + prompt,
                            "p99_ttft_ms": 5.0 * parallel,
                            "mean_tpot_ms": 2.0,
                            "completed": 8,
                        },
                        gates=[{"metric": "output_throughput", "outcome": "pass", "message": "ok", "change": 0.01}],
                    ),
                    f"suites/serving/test_static.py::test_static[cpu-p{parallel}]",
                )
            )
    for rate in (2.0, 8.0, float("inf")):
        d = _doc(
            CaseResult(
                "serving.dynamic",
                f"rate{rate}",
                {"request_rate": rate, "num_prompts": 64},
                {
                    f"{s}_{m}_ms": (10.0 if rate != float("inf") else 50.0) * (i + 1)
                    for i, s in enumerate(("mean", "p50", "p90", "p99"))
                    for m in ("ttft", "tpot")
                }
                | {"output_throughput": 1000.0, "request_throughput": rate if rate < 100 else 30.0},
            ),
            f"suites/serving/test_dynamic.py::test_dynamic[cpu-{rate}]",
        )
        d["distribution"] = {"ttft_ms": [5.0 + i % 7 for i in range(64)], "e2el_ms": [50.0 + i % 11 for i in range(64)]}
        docs.append(d)
    return docs


def run_data(directory: Path, failed_detail: str = HOSTILE) -> RunData:
    docs = serving_docs()
    docs.append(
        _doc(
            CaseResult(
                "accuracy.lm_eval",
                "llmqual_arith_mc",
                {"task": "llmqual_arith_mc"},
                {"llmqual_arith_mc/acc,none": 0.26, "llmqual_arith_mc/acc,none/stderr": 0.044},
                gates=[
                    {
                        "metric": "llmqual_arith_mc/acc,none",
                        "outcome": "pass",
                        "message": HOSTILE,
                        "baseline_mean": 0.27,
                        "baseline_stderr": 0.0446,
                        "candidate_mean": 0.26,
                        "change": -0.01,
                        "absolute": True,
                    }
                ],
            ),
            "suites/accuracy/test_lm_eval.py::test_lm_eval[cpu-llmqual_arith_mc]",
        )
    )
    docs.append(
        _doc(
            CaseResult(
                "training.alignment",
                "tiny",
                {},
                {"mre": 0.0, "mae": 0.0},
                checks={"alignment": {"ok": True, "message": "241 matched steps"}},
                series={
                    "loss": [[s, 6.0 / s] for s in range(1, 100)],
                    "reference": [[s, 6.1 / s] for s in range(1, 100)],
                },
            ),
            "suites/training/test_convergence.py::test_loss_follows_the_reference[cpu]",
        )
    )
    for name, candidate, expect, change in (
        ("a-a", "the plan's build", "pass", 0.004),
        ("max-num-seqs-2", "max-num-seqs: 2", "fail", -0.7),
    ):
        docs.append(
            _doc(
                CaseResult(
                    "serving.ab",
                    name,
                    {
                        "reference": {"build": "the plan's build", "vllm_version": None, "unmet_requirements": []},
                        "candidate": {"build": candidate, "vllm_version": None, "unmet_requirements": []},
                        "expect": expect,
                        "pairs": 6,
                        "pairs_set_aside": 0,
                    },
                    {
                        "p16-in64-out64/reference/output_throughput": 1000.0,
                        "p16-in64-out64/candidate/output_throughput": 1000.0 * (1 + change),
                    },
                    gates=[
                        {
                            "metric": "output_throughput",
                            "outcome": expect,
                            "message": f"paired change {change:+.1%}",
                            "change": change,
                            "low": change - 0.05,
                            "high": change + 0.05,
                            "resolution": 0.22,
                            "baseline_mean": 1000.0,
                            "candidate_mean": 1000.0 * (1 + change),
                            "n_candidate": 6,
                            "case": "p16-in64-out64",
                            "enforced": True,
                            "expect": expect,
                        }
                    ],
                ),
                f"suites/serving/test_ab.py::test_ab[cpu-{name}]",
            )
        )
    records = [{"nodeid": d["test"], "phase": "call", "outcome": "passed"} for d in docs]
    records.append(
        {
            "nodeid": "suites/serving/test_smoke.py::test_models[cpu]",
            "phase": "call",
            "outcome": "failed",
            "detail": failed_detail,
        }
    )
    summary = {
        "run_id": directory.name,
        "plan_names": {"cpu": "cpu-tiny"},
        "finished": 1.8e9,
        "environment": {"platform": "cpu", "host": HOSTILE, "packages": {"vllm": "0.32.0"}},
    }
    return RunData(directory, summary, records, docs)
