"""NPU containers: the exact `docker run` arguments, refused mounts, and removal on every exit path (a fake
`docker` on PATH records what it is asked: there is no docker engine or NPU here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.config.container import ContainerSpec
from harness.config.plan import ServerSpec, load_plan
from harness.errors import PlanError, ServerStartError
from harness.runtime.container import Container, ContainerError, run_arguments
from harness.runtime.metadata import MetadataBlockError
from harness.runtime.sweep import owner_token
from harness.server.vllm import ServerConfig, VLLMServer

SPEC = ContainerSpec(
    image="quay.io/ascend/vllm-ascend:v0.9.1",
    shm_size="16g",
    work_dir="/data/work",
    mounts=("/data/models:/data/models:ro",),
    env={"VLLM_USE_MODELSCOPE": "False"},
)


def test_docker_run_arguments_are_exact() -> None:
    assert run_arguments(SPEC, [3, 4], "llmqual-x", {"llmqual": "1"}) == [
        "docker", "run", "--detach", "--name", "llmqual-x", "--network=host", "--shm-size=16g",
        "--label=llmqual=1",
        "--device=/dev/davinci3", "--device=/dev/davinci4",
        "--device=/dev/davinci_manager", "--device=/dev/devmm_svm", "--device=/dev/hisi_hdc",
        "--volume=/usr/local/dcmi:/usr/local/dcmi:ro",
        "--volume=/usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro",
        "--volume=/usr/local/Ascend/driver/lib64/:/usr/local/Ascend/driver/lib64/:ro",
        "--volume=/usr/local/Ascend/driver/version.info:/usr/local/Ascend/driver/version.info:ro",
        "--volume=/etc/ascend_install.info:/etc/ascend_install.info:ro",
        "--volume=/data/work:/data/work", "--workdir=/data/work",
        "--volume=/data/models:/data/models:ro",
        "--env=VLLM_USE_MODELSCOPE",
        "--entrypoint=sleep", "quay.io/ascend/vllm-ascend:v0.9.1", "infinity",
    ]  # fmt: skip


def test_a_cpu_container_gets_no_device_and_reads_the_model_and_the_harness_environment() -> None:
    spec = ContainerSpec(image="llmqual/cpu-base:abc", host_environment=True, mounts=("/data:/data:ro",))
    args = run_arguments(spec, [], "llmqual-c", {}, "cpu", reads=["/srv/model", "/data/models/draft"])
    assert not [a for a in args if a.startswith(("--device", "--gpus"))]
    volumes = [a.removeprefix("--volume=") for a in args if a.startswith("--volume=")]
    environment = sorted({sys.base_prefix, sys.prefix})
    assert volumes == ["/data:/data:ro", *(f"{p}:{p}:ro" for p in environment), "/srv/model:/srv/model:ro"], (
        "the draft under the plan's /data mount is not mounted twice (docker refuses a duplicate mount point)"
    )


def test_gpu_cards_go_through_gpus() -> None:
    args = run_arguments(ContainerSpec(image="vllm/vllm-openai:v0.9.1"), [2, 3], "llmqual-g", {}, "gpu")
    assert '--gpus="device=2,3"' in args
    assert not [a for a in args if a.startswith("--device")]


@pytest.mark.parametrize(
    ("container", "problem"),
    [
        ("{image: i, mounts: ['/data:/home/ma-user']}", "would hide the image's /home/ma-user"),
        ("{image: i, work-dir: /home/ma-user/work}", "would hide the image's /home/ma-user"),
        ("{image: i, mounts: ['relative']}", "not HOST:CONTAINER"),
        ("{image: i, shm-size: lots}", "not a docker size"),
    ],
)
def test_bad_container_sections_are_refused(tmp_path: Path, container: str, problem: str) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_text(f"name: p\nplatform: npu\nmodel: {{path: /data/models/q}}\ncontainer: {container}\n")
    with pytest.raises(PlanError, match=problem):
        load_plan(plan)


def test_a_model_the_container_would_mount_over_its_home_is_refused(tmp_path: Path) -> None:
    """The model folder is mounted at its own path: one under /home/ma-user would hide the image's home."""
    plan = tmp_path / "p.yaml"
    plan.write_text("name: p\nplatform: npu\nmodel: {path: /home/ma-user/q}\ncontainer: {image: i}\n")
    problem = "model.path: a mount at /home/ma-user/q would hide the image's /home/ma-user"
    with pytest.raises(PlanError, match=problem):
        load_plan(plan)


def test_the_container_is_removed_on_normal_exit_and_on_error(docker_log: Path) -> None:
    with Container(SPEC, [0]) as container:
        assert container.id == "0123abcd"
        assert container.exec_argv(["python3", "-V"], ["A"]) == [
            "docker", "exec", "--env=A", container.name, "python3", "-V"
        ]  # fmt: skip
    with pytest.raises(RuntimeError), Container(SPEC, [1]) as failing:
        raise RuntimeError("planted")
    calls = docker_log.read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["run", "inspect", "exec", "rm"] * 2
    assert "VLLM_USE_MODELSCOPE=False" in Path(f"{docker_log}.run-env").read_text().splitlines()
    assert "--env=VLLM_USE_MODELSCOPE " in calls[0], "the value goes by docker's environment, not the command line"
    assert f"--label=llmqual.owner={owner_token()}" in calls[0]
    assert calls[2] == f"exec {container.name} timeout 10 bash -c exec 3<>/dev/tcp/169.254.169.254/80", "verified"
    assert calls[3] == f"rm --force {container.name}"
    assert calls[7] == f"rm --force {failing.name}"
    rules = (docker_log.parent / "iptables.log").read_text().splitlines()
    blocked = "OUTPUT -d 169.254.169.254 -m cgroup --path system.slice/docker-0123abcd.scope -j REJECT"
    assert [r.split(" OUTPUT")[0] for r in rules] == ["-w -I", "-w -D"] * 2, "each container blocked, then unblocked"
    assert all(blocked in r for r in rules)


def test_a_container_that_cannot_be_kept_from_the_metadata_address_is_not_kept(
    docker_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_IPTABLES_FAIL", "1")  # planted: not root
    with pytest.raises(MetadataBlockError, match=r"Permission denied.*block-metadata: false"), Container(SPEC, [0]):
        pass
    assert docker_log.read_text().splitlines()[-1].startswith("rm --force llmqual-")


def test_without_the_block_no_rule_is_written(docker_log: Path) -> None:
    with Container(SPEC.model_copy(update={"block_metadata": False}), [0]):
        pass
    assert [c.split()[0] for c in docker_log.read_text().splitlines()] == ["run", "rm"]
    assert not (docker_log.parent / "iptables.log").exists()


def test_a_refused_docker_run_says_why_and_leaves_nothing(docker_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "run")
    container = Container(SPEC, [0])
    with pytest.raises(ContainerError, match="Unable to find image"), container:
        pass
    owner = f"label=llmqual.owner={owner_token()}"
    lookup = f"ps --all --quiet --filter name=^{container.name}$ --filter {owner}"
    assert docker_log.read_text().splitlines()[-1] == lookup, "only a container of ours by that name is removed"


def test_a_server_in_a_container_that_dies_removes_the_container(docker_log: Path, tmp_path: Path) -> None:
    spec = ServerSpec(
        served_model_name="q", startup_timeout_s=30, devices=(2,), extra_args=("--api-key", "canary-key-1234")
    )
    env = (("PYTORCH_NPU_ALLOC_CONF", "max_split_size_mb:256"),)
    config = ServerConfig("npu", Path("/data/models/q"), spec, env, SPEC, devices=(2,))  # card 2 leased
    with pytest.raises(ServerStartError, match="exited with code 126") as info, VLLMServer(config, tmp_path / "s.log"):
        pass
    assert "OCI runtime exec failed" in info.value.log_tail
    image, run, _, probe, execute, remove = docker_log.read_text().splitlines()
    assert "/dev/tcp/169.254.169.254/80" in probe, "the metadata block is verified before the server starts"
    assert image == "image inspect --format {{.Id}} quay.io/ascend/vllm-ascend:v0.9.1", "the image is looked for first"
    assert "--device=/dev/davinci2" in run
    assert execute.startswith("exec --env=PYTORCH_NPU_ALLOC_CONF --env=VLLM_API_KEY llmqual-")
    assert "ASCEND_RT_VISIBLE_DEVICES" not in execute, "inside, the container's cards are its own"
    assert "canary-key-1234" not in execute, "no secret on a command line that ps shows"
    docker_env = Path(f"{docker_log}.exec-env").read_text().splitlines()
    assert {"PYTORCH_NPU_ALLOC_CONF=max_split_size_mb:256", "VLLM_API_KEY=canary-key-1234"} <= set(docker_env)
    assert " python3 -m vllm.entrypoints.openai.api_server --model /data/models/q" in execute
    assert remove.startswith("rm --force llmqual-")
