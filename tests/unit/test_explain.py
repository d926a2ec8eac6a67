"""`llmqual plan explain`: the rehearsal of the shipped hardware plans, pinned by golden files and checked against
the vendors' documented commands (vllm-ascend's `docker run`, its P/D environment, vLLM's GPU image).

The golden files hold what a run would start, with this machine's paths replaced by `<python>` and notes that
depend on the machine (a model or tool missing here) left out. After a deliberate change, rewrite them with
LLMQUAL_UPDATE_GOLDEN=1 and read the diff as a reviewer would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.config.plan import load_plan
from harness.explain.rehearsal import rehearse
from harness.explain.steps import Step, masked, render, shell_lines

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "explain"
SHIPPED = [
    "npu-qwen2.5-7b-910b", "npu-qwen2.5-7b-pd-910b", "npu-qwen2.5-7b-pd-a3", "gpu-llama3.1-8b",
    "npu-qwen2.5-72b-2node-910b", "gpu-llama3.1-70b-2node",
]  # fmt: skip
MACHINE_NOTES = ("no config.json there on this machine", "here the launch would stop")
# vllm-ascend's quick start `docker run` (every release since 0.7): the management devices and the host files.
VENDOR_NPU_ARGS = [
    "--device=/dev/davinci_manager",
    "--device=/dev/devmm_svm",
    "--device=/dev/hisi_hdc",
    "--volume=/usr/local/dcmi:/usr/local/dcmi:ro",
    "--volume=/usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro",
    "--volume=/usr/local/Ascend/driver/lib64/:/usr/local/Ascend/driver/lib64/:ro",
    "--volume=/usr/local/Ascend/driver/version.info:/usr/local/Ascend/driver/version.info:ro",
    "--volume=/etc/ascend_install.info:/etc/ascend_install.info:ro",
]


def steps_of(name: str) -> list[Step]:
    plan = load_plan(f"fixtures/plans/{name}.yaml")
    return rehearse(plan, Path("/cache"), Path("/reports/<run id>"))


def golden_text(name: str) -> str:
    plan = load_plan(f"fixtures/plans/{name}.yaml")
    text = render(plan.name, plan.source, plan.platform, steps_of(name)).replace(sys.executable, "<python>")
    return "".join(line for line in text.splitlines(True) if not any(n in line for n in MACHINE_NOTES))


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # plan sources as the README writes them


@pytest.mark.parametrize("name", SHIPPED)
def test_the_rehearsal_of_a_shipped_plan_matches_its_golden_file(name: str) -> None:
    path = GOLDEN / f"{name}.txt"
    text = golden_text(name)
    if os.environ.get("LLMQUAL_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}: write it with LLMQUAL_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"the rehearsal of {name} changed: diff it with {path}"


@pytest.mark.parametrize("name", ["npu-qwen2.5-7b-910b", "npu-qwen2.5-7b-pd-910b", "npu-qwen2.5-7b-pd-a3"])
def test_npu_containers_run_as_vllm_ascend_documents_them(name: str) -> None:
    containers = [s for s in steps_of(name) if s.kind.startswith("container")]
    assert containers
    for step in containers:
        argv = list(step.argv)
        assert argv[:3] == ["docker", "run", "--detach"]
        assert "--network=host" in argv
        assert all(arg in argv for arg in VENDOR_NPU_ARGS), set(VENDOR_NPU_ARGS) - set(argv)
        assert [a for a in argv if a.startswith("--device=/dev/davinci") and a[-1].isdigit()] == [
            f"--device=/dev/davinci{card}" for card in step.devices
        ]
        assert any(a.startswith("--shm-size=") for a in argv)
        assert not [a for a in argv if "/home/ma-user" in a]
        assert argv[-2:] == [argv[-2], "infinity"]
        assert argv[-3] == "--entrypoint=sleep"


def test_the_a3_deployment_spans_two_nodes_as_vllm_ascend_expects() -> None:
    steps = steps_of("npu-qwen2.5-7b-pd-a3")
    table = json.loads(next(s.content for s in steps if s.kind == "rank table"))
    devices = table["prefill_device_list"] + table["decode_device_list"]
    assert table["version"] == "1.2"
    assert table["server_count"] == "2"
    assert all({"super_pod_id", "super_device_id"} <= set(d) for d in devices)
    servers = [s for s in steps if s.kind.startswith("server")]
    assert [s.node for s in servers] == [0, 1]
    assert servers[1].elsewhere == "llmqual deploy up --plan fixtures/plans/npu-qwen2.5-7b-pd-a3.yaml --node 1"
    for server, ip, role in zip(servers, ("10.20.0.11", "10.20.0.12"), ("kv_producer", "kv_consumer"), strict=True):
        argv = list(server.argv)
        assert argv[argv.index("--host") + 1] == ip  # reachable from node 0's proxy
        assert json.loads(argv[argv.index("--kv-transfer-config") + 1])["kv_role"] == role
        env = dict(server.env)
        assert env["HCCL_IF_IP"] == ip
        assert env["DISAGGREGATED_PREFILL_RANK_TABLE_PATH"].endswith("ranktable.json")
        assert "ASCEND_RT_VISIBLE_DEVICES" not in env  # in its container the cards are numbered from 0
    proxy = steps[-1].argv
    assert proxy[proxy.index("--prefill") + 1] == "http://10.20.0.11:8100"
    assert proxy[proxy.index("--decode") + 1] == "http://10.20.0.12:8200"


def test_a_node_without_device_ips_shows_the_command_that_reads_them(tmp_path: Path) -> None:
    source = (REPO / "fixtures/plans/npu-qwen2.5-7b-pd-910b.yaml").read_text()
    plan_file = tmp_path / "pd.yaml"
    plan_file.write_text(
        source.replace("      device-ips: {0: 192.1.27.6, 1: 192.2.27.6, 2: 192.3.27.6, 3: 192.4.27.6}\n", "")
    )
    steps = rehearse(load_plan(str(plan_file)), Path("/cache"), Path("/reports/r"))
    table = next(s for s in steps if s.kind == "rank table")
    assert "<read here: hccn_tool -i 2 -ip -g>" in table.content
    assert any("hccn_tool -i N -ip -g" in note for note in table.notes)


def test_the_gpu_container_replaces_the_vllm_images_entrypoint() -> None:
    container, server = [s for s in steps_of("gpu-llama3.1-8b") if s.kind in ("container", "server")]
    assert '--gpus="device=0"' in container.argv
    assert "--entrypoint=sleep" in container.argv
    assert server.argv[:2] == ("docker", "exec")
    assert "vllm.entrypoints.openai.api_server" in server.argv


def test_secrets_are_masked_by_name_and_by_value() -> None:
    env = dict(masked({"HF_TOKEN": "hf_abc", "VLLM_API_KEY": "k-123", "TOKENIZER_PATH": "/m", "PLAIN": "1"}))
    assert env == {"HF_TOKEN": "***", "VLLM_API_KEY": "***", "TOKENIZER_PATH": "/m", "PLAIN": "1"}


def test_an_api_key_in_the_plan_never_reaches_the_rehearsal(tmp_path: Path) -> None:
    source = (REPO / "fixtures/plans/gpu-llama3.1-8b.yaml").read_text()
    plan_file = tmp_path / "keyed.yaml"
    plan_file.write_text(source.replace('extra-args: ["--gpu', 'extra-args: ["--api-key", "sk-secret-1234", "--gpu'))
    steps = rehearse(load_plan(str(plan_file)), Path("/cache"), Path("/reports/r"))
    text = render("p", "s", "gpu", steps)
    assert "sk-secret-1234" not in text
    assert "VLLM_API_KEY=***" in text


def test_commands_are_written_one_option_per_line() -> None:
    lines = shell_lines(["docker", "exec", "--env=A", "c1", "python3", "-m", "mod", "--port", "<free port>", "--flag"])
    assert lines == [
        "docker exec \\",
        "--env=A \\",
        "c1 python3 \\",
        "-m mod \\",
        "--port '<free port>' \\",
        "--flag",
    ]


def test_the_cli_explains_any_platform_here_and_refuses_a_bad_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "explain", "--plan", "fixtures/plans/npu-qwen2.5-7b-pd-910b.yaml", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [s["kind"] for s in document["steps"]][-1] == "proxy"
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "fixtures/plans/gpu-llama3.1-8b.yaml").read_text().replace("max-num-seqs", "max-num-seq"))
    assert main(["plan", "explain", "--plan", str(bad)]) == 2
    assert "server.max-num-seq" in capsys.readouterr().err


def test_pytest_explain_prints_the_rehearsal_and_starts_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", "--explain",
         "--plan", "fixtures/plans/npu-qwen2.5-7b-910b.yaml", "--reports-dir", str(tmp_path / "reports")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "docker run" in done.stdout
    assert "--device=/dev/davinci0" in done.stdout
    assert "nothing was started" in done.stdout + done.stderr
    assert not (tmp_path / "reports").exists()  # no run folder: the session ended before it opened one


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize(
    ("name", "cards_env"), [("npu-qwen2.5-72b-2node-910b", "HCCL_IF_IP"), ("gpu-llama3.1-70b-2node", "")]
)
def test_a_server_spanning_two_nodes_runs_as_vllm_documents_it(name: str, cards_env: str) -> None:
    """vLLM's multi-node runtime (multiprocessing backend): every node gets the same options with --nnodes, its own
    --node-rank and the head's --master-addr/--master-port; the other nodes run `vllm serve ... --headless`, each in
    its own container with its own cards; per-node variables (vllm-ascend's HCCL_IF_IP) differ by node."""
    steps = steps_of(name)
    servers = [s for s in steps if s.kind == "server"]
    assert [s.node for s in servers] == [0, 1]
    head, other = (list(s.argv) for s in servers)
    assert "--headless" not in head
    assert other[other.index("vllm") : other.index("vllm") + 2] == ["vllm", "serve"]
    assert other[-1] == "--headless"
    assert "--port" not in other
    for node, argv in enumerate((head, other)):
        assert _option(argv, "--nnodes") == "2"
        assert _option(argv, "--node-rank") == str(node)
        assert _option(argv, "--tensor-parallel-size") == "8"
        assert _option(argv, "--pipeline-parallel-size") == "2"
    assert _option(head, "--master-addr") == _option(other, "--master-addr")
    assert _option(head, "--master-port") == _option(other, "--master-port") == "29500"
    containers = [s for s in steps if s.kind == "container"]
    assert [(s.node, s.devices) for s in containers] == [(0, tuple(range(8))), (1, tuple(range(8)))]
    if cards_env:
        assert dict(servers[0].env)[cards_env] != dict(servers[1].env)[cards_env]
