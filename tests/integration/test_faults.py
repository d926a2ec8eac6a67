"""Faults planted in real runs: a server stalled (SIGSTOP) or killed (SIGKILL) in the middle of a case, and pytest
killed outright with a server, a container and a training run up. Each test checks that the run says what
happened, keeps what it measured and leaves no process of ours behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.bench.cases import LoadSettings, StaticCase
from harness.bench.measure import measure_static
from harness.client.openai import request_once
from harness.config.plan import ServerSpec, load_plan
from harness.errors import ServerStopped
from harness.load.tokens import Tokens
from harness.paths import cache_root
from harness.results.case import CaseResult
from harness.served import resolve_model, serving_config
from harness.server.pool import ServerPool, ServerRestarted
from harness.server.vllm import ServerConfig, VLLMServer
from tests.integration.containers import labelled_containers
from tests.integration.procs import (
    REPO,
    TAG,
    harness_env,
    new_tag,
    no_tagged_processes_within,
    pytest_command,
    wait_for_mark,
)

pytestmark = pytest.mark.integration

PLAN = REPO / "fixtures/plans/cpu-tiny.yaml"
REQUEST_TIMEOUT_S = 5.0


def tagged_config(tag: str) -> ServerConfig:
    plan = load_plan(PLAN)
    cache = cache_root(REPO)
    base = serving_config(plan, resolve_model(plan, cache), cache)
    spec: ServerSpec = base.spec.model_copy(update={"nice": 0})
    return ServerConfig(base.platform, base.model_path, spec, (*base.env, (TAG, tag)))


def signal_during_case(server: VLLMServer, sig: signal.Signals, tokens: Tokens, partials: list[CaseResult]) -> str:
    """Send `sig` to the server's group in the middle of a repeated case's second repeat, with requests in
    flight; returns what ended the case."""
    pgid = server.pid
    assert pgid is not None
    sent = False

    def mid_stream(case_id: str, done: int, total: int) -> None:
        nonlocal sent
        if partials and done >= 8 and not sent:  # the first repeat is on record; eight of the second are done
            sent = True
            os.killpg(pgid, sig)

    settings = LoadSettings(request_timeout_s=REQUEST_TIMEOUT_S, progress=mid_stream)
    started = time.monotonic()
    with pytest.raises(ServerStopped) as info:
        measure_static(server.endpoint, tokens, StaticCase(4, 64, 64, 8), settings, 3, progress=partials.append)
    took = time.monotonic() - started
    assert sent
    assert took < 60, f"a stopped server ends the case after one timeout, not {took:.0f} s"
    return str(info.value)


def test_a_stalled_then_a_killed_server_end_their_case_and_are_restarted(tmp_path: Path) -> None:
    tag = new_tag()
    config = tagged_config(tag)
    tokens = Tokens.load(config.model_path)
    partials: list[CaseResult] = []
    with ServerPool(tmp_path) as pool:
        first = pool.get(config)
        stalled = signal_during_case(first, signal.SIGSTOP, tokens, partials)
        assert "the server stopped answering" in stalled
        assert "does not answer" in stalled
        assert partials, "the repeats measured before the stall were handed over to be written"
        assert partials[-1].partial is not None
        assert partials[-1].metrics["completed"] == partials[-1].config["num_requests"]

        with pytest.warns(ServerRestarted, match="/health did not answer"):
            second = pool.get(config)
        assert second is not first
        assert request_once(second.endpoint, "completions", {"prompt": "1+1=", "max_tokens": 2}).ok

        killed = signal_during_case(second, signal.SIGKILL, tokens, [])
        assert "the server stopped answering" in killed
        with pytest.warns(ServerRestarted, match="exited with code -9"):
            third = pool.get(config)
        assert request_once(third.endpoint, "completions", {"prompt": "1+1=", "max_tokens": 2}).ok
        assert [r["reason"].split(" (")[0] for r in pool.restarts] == [
            "/health did not answer within 10 s",
            "its process exited with code -9",
        ]
    assert no_tagged_processes_within(tag) == []


HOLDS_EVERYTHING = """
import os, sys, time
from pathlib import Path
import pytest
from harness.config.container import ContainerSpec
from harness.runtime.container import Container
from harness.runtime.process import ManagedProcess


def test_holds_a_server_a_container_and_a_training_run(endpoint):
    if "LLMQUAL_WAIT_MARK" not in os.environ:
        pytest.skip("only for the kill -9 test")
    spec = ContainerSpec(image=os.environ["LLMQUAL_TEST_IMAGE"], block_metadata=False)
    container = Container(spec, [], platform="cpu").__enter__()  # a real container, never removed by this run
    # a training launcher as LLaMA-Factory's: bash and the trainer under it
    trainer = f"{sys.executable} -c 'import time; time.sleep(600)'"
    ManagedProcess(["bash", "-c", f"{trainer} & wait"], Path("train.log")).__enter__()
    Path(os.environ["LLMQUAL_WAIT_MARK"]).write_text(container.name)
    time.sleep(600)


def test_next_run():
    pass
"""


def test_kill_9_of_pytest_leaves_nothing_after_the_next_run_starts(tmp_path: Path, base_image: str) -> None:
    tag = new_tag()
    (tmp_path / "test_held.py").write_text(HOLDS_EVERYTHING)
    mark = tmp_path / "ready"
    env = {**harness_env(tag), "LLMQUAL_WAIT_MARK": str(mark), "LLMQUAL_TEST_IMAGE": base_image}
    reports = f"--reports-dir={tmp_path / 'out'}"
    # --plan=PATH in one word: pytest takes a separate path argument into its rootdir choice (the checkout)
    first = pytest_command("-m", "cpu", "-k", "holds", f"--plan={PLAN}", reports)
    with subprocess.Popen(first, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        try:
            wait_for_mark(proc, mark)
            proc.kill()  # planted: kill -9, no teardown runs
            proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    container = mark.read_text()
    assert container in labelled_containers(), "the container outlived the killed run"
    time.sleep(2)  # the server's direct child may go with PDEATHSIG; the trainer under bash does not
    from tests.integration.procs import tagged_processes

    orphans = tagged_processes(tag)
    assert orphans, "the planted fault leaves processes behind (else this test proves nothing)"

    del env["LLMQUAL_WAIT_MARK"]
    second = subprocess.run(
        pytest_command("-m", "not cpu", "-k", "next_run", reports, "-W", "always"),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    assert "leftover(s) of earlier runs that died" in second.stdout, second.stdout[-3000:]
    assert f"container {container}" in second.stdout
    assert no_tagged_processes_within(tag) == [], "the next run stopped every leftover"
    assert container not in labelled_containers(), "the next run removed the container"
    with sqlite3.connect(tmp_path / "out" / "index.sqlite") as db:
        statuses = [row[0] for row in db.execute("SELECT status FROM runs ORDER BY started")]
    assert statuses == ["interrupted", "passed"]

    killed_run = sorted((tmp_path / "out").glob("2*"))[0]
    report = subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", str(killed_run), "--reports", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "INCOMPLETE: the run was stopped before it could write its summary" in report.stdout
    assert "INCOMPLETE</span>" in (killed_run / "report.html").read_text()


CANARY = "llmqual-canary-9d2f61b0"


def test_a_server_with_an_api_key_serves_smoke_and_accuracy_and_the_key_is_in_no_file(tmp_path: Path) -> None:
    """The plan's server requires a key (as production servers do): readiness, the suites and lm-eval must send it,
    and no file of the run folder may hold it."""
    fixtures = tmp_path / "fixtures"
    for folder in ("plans", "baselines", "lm_eval_tasks"):
        shutil.copytree(REPO / "fixtures" / folder, fixtures / folder)
    plan = fixtures / "plans" / "cpu-tiny.yaml"
    data = yaml.safe_load(plan.read_text())
    data["server"]["extra-args"] = ["--api-key", CANARY]
    plan.write_text(yaml.safe_dump(data, sort_keys=False))
    tag = new_tag()
    reports = tmp_path / "out"
    done = subprocess.run(
        pytest_command(
            "suites/serving/test_smoke.py", "suites/accuracy/test_lm_eval.py", "-m", "cpu",
            f"--plan={plan}", f"--reports-dir={reports}",
        ),
        cwd=REPO, env=harness_env(tag), capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert re.search(r"\b9 passed\b", done.stdout), done.stdout[-2000:]  # 7 smoke checks, 2 lm-eval tasks
    run = (reports / "latest").resolve()
    files = [p for p in run.rglob("*") if p.is_file()]
    names = {str(p.relative_to(run)) for p in files}
    assert {"results.jsonl", "junit.xml", "run.json", "report.html", "cases.json"} <= names
    assert any(n.startswith("logs/vllm-") for n in names), "the server's log is searched too"
    assert any(n.startswith("accuracy/lm_eval/") for n in names), "and lm-eval's own files"
    holding = [str(p.relative_to(run)) for p in files if CANARY.encode() in p.read_bytes()]
    assert holding == [], f"the API key leaked into {holding}"
    assert CANARY not in done.stdout + done.stderr
    assert no_tagged_processes_within(tag) == []


def test_llmqual_serve_stops_on_sigterm_while_it_waits_for_readiness(tmp_path: Path) -> None:
    tag = new_tag()
    command = [sys.executable, "-m", "harness.cli", "serve", "--plan", str(PLAN), "--log", str(tmp_path / "s.log")]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with subprocess.Popen(command, cwd=REPO, env=harness_env(tag), **pipes) as proc:  # type: ignore[call-overload]
        try:
            assert proc.stdout is not None
            assert "starting vLLM" in proc.stdout.readline()
            time.sleep(3)  # vLLM is loading: not ready for tens of seconds
            assert (tmp_path / "s.log").exists()
            proc.terminate()
            stopped = time.monotonic()
            _, err = proc.communicate(timeout=60)
            # vLLM needs 30-60 s to get ready here: a harness that waited for readiness first would take that long
            assert time.monotonic() - stopped < 20, "SIGTERM is obeyed at once, not after readiness"
        finally:
            if proc.poll() is None:
                proc.kill()
    assert no_tagged_processes_within(tag) == [], "the server group was stopped"
    # It exited 0 and said nothing: a server that never served is no success.
    assert proc.returncode == 130
    assert "interrupted before the server was ready; it was stopped" in err
