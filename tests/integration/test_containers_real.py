"""The container path with a real Docker engine (scripts/docker-up starts one) and the harness's own CPU image:
the container plan's serving and accuracy suites, and the faults a node sees (an image that is not there, a
container that cannot start, a name someone else holds, a container killed mid-case). Each test checks that no
container of the harness is left (`docker ps --all --filter label=llmqual`)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.client.openai import request_once
from harness.config.container import ContainerSpec
from harness.config.plan import load_plan
from harness.errors import PlanError
from harness.paths import cache_root
from harness.runtime.container import Container, ContainerError
from harness.runtime.image import prune_base_images
from harness.served import resolve_model, serving_config
from harness.server.pool import ServerPool, ServerRestarted
from harness.server.vllm import ServerConfig, VLLMServer
from tests.integration.containers import labelled_containers
from tests.integration.procs import REPO, harness_env, new_tag, no_tagged_processes_within, pytest_command

pytestmark = pytest.mark.integration

PLAN = REPO / "fixtures/plans/cpu-tiny-container.yaml"


@pytest.fixture
def nothing_left(base_image: str) -> Iterator[str]:
    """The base image; after the test, no container of the harness may be left."""
    before = set(labelled_containers())
    yield base_image
    left = set(labelled_containers()) - before
    assert not left, f"containers left behind: {sorted(left)}"


def test_the_container_plan_serves_the_serving_and_accuracy_suites(nothing_left: str, tmp_path: Path) -> None:
    tag = new_tag()
    started = time.time()
    done = subprocess.run(
        pytest_command("suites/serving", "suites/accuracy", "-m", "cpu", f"--plan={PLAN}", f"--reports-dir={tmp_path}"),
        cwd=REPO, env=harness_env(tag), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert no_tagged_processes_within(tag) == []
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    run = json.loads((tmp_path / "latest" / "run.json").read_text())
    assert run["verdict"] == "PASS", run
    cases = json.loads((tmp_path / "latest" / "cases.json").read_text())["cases"]
    suites = {c["suite"] for c in cases}
    assert {"serving.static", "serving.dynamic", "serving.prefix", "accuracy.lm_eval"} <= suites, suites
    assert re.search(r"^PASS +serving\.smoke: 7 passed", done.stdout, re.M), done.stdout[-3000:]
    # The server ran in a container of this run: docker's own record of what it started, by the run's label.
    events = subprocess.run(
        ["docker", "events", "--since", str(int(started)), "--until", str(int(time.time()) + 1),
         "--filter", "label=llmqual", "--filter", "event=start",
         "--format", '{{index .Actor.Attributes "llmqual.run"}}'],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert events.stdout.split() == [run["run_id"]], "one container, started by this run"
    log = next((tmp_path / "latest" / "logs").glob("vllm-*.log")).read_text(errors="replace")
    assert "Starting vLLM" in log or "vLLM API server" in log, log[-2000:]


def test_an_image_that_is_not_there_is_named_before_anything_starts(nothing_left: str, tmp_path: Path) -> None:
    plan = load_plan(PLAN)
    cache = cache_root(REPO)
    config = serving_config(plan, resolve_model(plan, cache), cache)
    assert config.container is not None
    missing = config.container.model_copy(update={"image": "llmqual/no-such-image:1"})
    server = VLLMServer(dataclasses.replace(config, container=missing), tmp_path / "vllm.log")
    with pytest.raises(ContainerError, match=r"container.image llmqual/no-such-image:1 is not on this node's docker"):
        server.__enter__()
    assert not (tmp_path / "vllm.log").exists(), "no server was started"


def test_a_container_that_cannot_start_says_dockers_reason(nothing_left: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # Planted: an empty folder over /usr/bin hides `sleep`, the container's command: the runtime cannot start it.
    spec = ContainerSpec(image=nothing_left, mounts=(f"{empty}:/usr/bin:ro",), block_metadata=False)
    started = time.monotonic()
    with pytest.raises(ContainerError, match=r"docker could not start .*sleep"), Container(spec, [], platform="cpu"):
        pass
    assert time.monotonic() - started < 60


def test_a_name_held_by_another_container_is_refused_and_left_alone(nothing_left: str) -> None:
    spec = ContainerSpec(image=nothing_left, block_metadata=False)
    theirs = f"someone-else-{new_tag()[:8]}"
    subprocess.run(["docker", "create", "--name", theirs, nothing_left, "sleep", "1"], check=True, timeout=60,
                   capture_output=True)  # fmt: skip
    try:
        ours = Container(spec, [], platform="cpu")
        ours.name = theirs  # planted: the clash a reused name would cause
        with pytest.raises(ContainerError, match="already in use"), ours:
            pass
        names = subprocess.run(["docker", "ps", "--all", "--format", "{{.Names}}"], capture_output=True, text=True,
                               check=True, timeout=60).stdout.split()  # fmt: skip
        assert theirs in names, "the harness removed a container it did not start"
    finally:
        subprocess.run(["docker", "rm", "--force", theirs], check=False, timeout=60, capture_output=True)


def test_a_container_killed_mid_case_is_restarted_by_the_pool(nothing_left: str, tmp_path: Path) -> None:
    tag = new_tag()
    plan = load_plan(PLAN)
    cache = cache_root(REPO)
    base = serving_config(plan, resolve_model(plan, cache), cache)
    config = _with_env(base, "LLMQUAL_TEST_TAG", tag)
    with ServerPool(tmp_path, max_live=1) as pool:
        first = pool.get(config)
        name = first.container_name
        assert name in labelled_containers()
        subprocess.run(["docker", "kill", name], check=True, timeout=60, capture_output=True)
        gone = request_once(first.endpoint, "completions", {"prompt": "1+1=", "max_tokens": 2}, 10)
        assert not gone.ok, "the killed container's server does not answer"
        with pytest.warns(ServerRestarted, match="exited with code"):
            second = pool.get(config)
        assert second.container_name not in (None, name)
        assert request_once(second.endpoint, "completions", {"prompt": "1+1=", "max_tokens": 2}).ok
    assert no_tagged_processes_within(tag) == []


def _with_env(config: ServerConfig, key: str, value: str) -> ServerConfig:
    return dataclasses.replace(config, env=(*config.env, (key, value)))


def test_a_mount_over_the_images_home_is_refused_before_docker_is_asked(nothing_left: str, tmp_path: Path) -> None:
    plan = tmp_path / "p.yaml"
    text = PLAN.read_text().replace(
        "  host-environment: true\n", "  host-environment: true\n  mounts: ['/tmp:/home/ma-user']\n"
    )
    plan.write_text(text)
    with pytest.raises(PlanError, match="would hide the image's /home/ma-user"):
        load_plan(plan)


def test_older_base_image_tags_are_pruned_and_the_current_one_kept(nothing_left: str) -> None:
    """An earlier recipe's image (a tag of the base image's name) is removed; the current tag stays."""
    stale = "llmqual/cpu-base:stale0000000"
    subprocess.run(["docker", "tag", nothing_left, stale], check=True, capture_output=True, timeout=60)
    try:
        assert prune_base_images(keep=nothing_left) == [stale]
        tags = subprocess.run(
            ["docker", "images", "llmqual/cpu-base", "--format", "{{.Repository}}:{{.Tag}}"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.split()  # fmt: skip
        assert tags == [nothing_left]
    finally:
        subprocess.run(["docker", "image", "rm", stale], capture_output=True, timeout=60, check=False)
