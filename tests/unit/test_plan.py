"""Plan validation: every bad input is refused up front with the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config.plan import load_plan
from harness.errors import PlanError
from harness.served import resolve_model

REPO = Path(__file__).resolve().parents[2]
GOOD = """
name: t
platform: cpu
model:
  tiny: {hidden-size: 128, num-heads: 2}
server:
  served-model-name: m
  max-model-len: 512
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "fixtures/plans").glob("*.yaml")))
def test_shipped_plans_validate(name: str) -> None:
    plan = load_plan(REPO / "fixtures/plans" / name)
    assert plan.name == Path(name).stem
    assert plan.source.endswith(name)


def test_cpu_default_plan_is_runnable_here() -> None:
    plan = load_plan(REPO / "fixtures/plans/cpu-tiny.yaml")
    plan.check_runnable()
    assert plan.platform == "cpu"
    assert plan.model.tiny is not None


def test_good_plan_is_frozen(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD))
    assert plan.server.max_model_len == 512
    with pytest.raises(ValueError, match="frozen"):
        plan.server.max_model_len = 1  # type: ignore[misc]


def test_unknown_key_names_file_key_and_close_match(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("max-model-len", "max-model-length"))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    message = str(info.value)
    assert str(path) in message
    assert "server.max-model-length" in message
    assert "did you mean 'max-model-len'" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"servers: unknown key.*did you mean 'server'"):
        load_plan(write(tmp_path, GOOD + "servers: {}\n"))


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("max-model-len: 512", "max-model-len: 0", "server.max-model-len"),
        ("max-model-len: 512", "dtype: float33", "server.dtype"),
        ("max-model-len: 512", "tensor-parallel-size: two", "server.tensor-parallel-size"),
        ("max-model-len: 512", "extra-args: --seed", "server.extra-args"),
        ("platform: cpu", "platform: tpu", "platform"),
        ("num-heads: 2", "num-heads: 3", "model.tiny"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, GOOD.replace(old, new)))
    assert info.value.key == key
    assert info.value.fix


def test_missing_model_path_is_refused_before_running(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD.replace("tiny: {hidden-size: 128, num-heads: 2}", "path: models/none")))
    with pytest.raises(PlanError) as info:
        plan.check_runnable()
    assert info.value.key == "model.path"
    assert str(tmp_path / "models" / "none") in str(info.value)


def test_model_path_relative_to_the_plan(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    plan = load_plan(write(tmp_path, GOOD.replace("tiny: {hidden-size: 128, num-heads: 2}", "path: m")))
    plan.check_runnable()
    assert plan.model_path() == tmp_path / "m"


def test_both_model_sources_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="exactly one of 'path'"):
        load_plan(write(tmp_path, GOOD.replace("model:\n", "model:\n  path: /x\n")))


@pytest.mark.parametrize(("text", "problem"), [("[1, 2]", "must be a YAML mapping"), ("a: [", "not valid YAML")])
def test_not_a_plan(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(PlanError, match=problem):
        load_plan(write(tmp_path, text))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="cannot read the plan"):
        load_plan(tmp_path / "absent.yaml")


SUITE_ERRORS = [
    (
        "suites: {static: {parallel-num: [1], prompt-tokens: [64, 128], output-tokens: [16]}}",
        "suites.static",
        "prompt-tokens has 2 entries and output-tokens 1",
    ),
    (
        "suites: {static: {parallel-num: [1], prompt-tokens: [500], output-tokens: [64]}}",
        "",
        "prompt-tokens 500 + output-tokens 64 exceed server.max-model-len 512",
    ),
    ("suites: {dynamic: {request-rate: [1, 2], num-prompts: [10]}}", "suites.dynamic", "paired one to one"),
    ("suites: {dynamic: {request-rate: [0], num-prompts: [10]}}", "suites.dynamic.request-rate", "0 is not a request"),
    ("suites: {dynamic: {request-rate: [-1], num-prompts: [10]}}", "dynamic.request-rate", "-1 is not a"),
    ("suites: {dynamic: {dataset: {type: sharegpt}}}", "suites.dynamic.dataset", "exactly one of 'path'"),
    ("suites: {dynamic: {dataset: {type: random, path: x.json}}}", "suites.dynamic.dataset", "random dataset"),
    ("suites: {prefix: {prefix-tokens: 64, prompt-tokens: 64}}", "suites.prefix", "smaller than prompt-tokens"),
    ("suites: {statik: {}}", "suites", "did you mean 'static'"),
]


@pytest.mark.parametrize(("section", "key", "problem"), SUITE_ERRORS)
def test_bad_suite_sections_name_the_key(tmp_path: Path, section: str, key: str, problem: str) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, GOOD + section))
    assert problem in str(info.value)
    assert key in info.value.key or key in str(info.value)
    assert str(tmp_path / "plan.yaml") in str(info.value)


def test_infinite_rates_are_written_as_yaml_inf(tmp_path: Path) -> None:
    plan = load_plan(
        write(tmp_path, GOOD + "suites: {dynamic: {request-rate: [2, .inf, inf], num-prompts: [1, 1, 1]}}")
    )
    assert plan.suites.dynamic is not None
    assert plan.suites.dynamic.request_rate == (2.0, float("inf"), float("inf"))


def test_a_missing_run_baseline_file_stops_the_run(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD + "gates: {baseline: baselines/none.yaml}\n"))
    with pytest.raises(PlanError) as info:
        plan.check_runnable()
    assert info.value.key == "gates.baseline"
    assert str(tmp_path / "baselines" / "none.yaml") in str(info.value)


def test_a_missing_accuracy_baseline_file_stops_the_run(tmp_path: Path) -> None:
    accuracy = "suites:\n  accuracy: {tasks: [{name: t}], baselines: acc/none.yaml}\n"
    plan = load_plan(write(tmp_path, GOOD + accuracy))
    with pytest.raises(PlanError) as info:
        plan.check_runnable()
    assert info.value.key == "suites.accuracy.baselines"


def test_an_ab_candidate_with_an_unknown_server_key_names_it(tmp_path: Path) -> None:
    ab = "ab:\n  comparisons:\n    - {name: slow, candidate: {server: {max-num-seqz: 4}}}\n"
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, GOOD + ab))
    text = str(info.value)
    assert str(tmp_path / "plan.yaml") in text
    assert "ab.comparisons.0.candidate.server.max-num-seqz" in text
    assert "max-num-seqs" in text  # the closest valid key


@pytest.mark.parametrize(
    ("candidate", "key", "words"),
    [
        ("{max-num-seqs: 4}", "ab.comparisons.0.candidate", "go under `server:`"),
        ("{python: /x/bin/python, vllm: 0.31.0}", "ab.comparisons.0.candidate", "give one"),
        ("{vllm: latest}", "ab.comparisons.0.candidate", "not a release number"),
    ],
)
def test_an_ab_side_names_what_is_wrong(tmp_path: Path, candidate: str, key: str, words: str) -> None:
    ab = f"ab:\n  comparisons:\n    - {{name: c, candidate: {candidate}}}\n"
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, GOOD + ab))
    assert f"{key}: " in str(info.value)
    assert words in str(info.value)
    assert "Value error" not in str(info.value)


def test_a_planted_fault_must_differ_from_the_reference(tmp_path: Path) -> None:
    ab = "ab:\n  comparisons:\n    - {name: same, candidate: {}, expect: fail}\n"
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, GOOD + ab))
    assert "comparisons.same: expects a fail but its candidate is the reference build" in str(info.value)


def test_a_trained_tiny_model_needs_the_plan_to_train_it(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, GOOD.replace("num-heads: 2}", "num-heads: 2, trained: true}")))
    assert "suites.training" in str(info.value)


MINDSPEED = "suites:\n  training: {launcher: mindspeed, mindspeed: {script: pretrain.sh}}\n"
LLAMAFACTORY = (
    "suites:\n  training: {launcher: llamafactory, llamafactory: {template: empty, data: {synthetic: arithmetic}}}\n"
)


def test_a_served_training_checkpoint_must_be_one_vllm_loads(tmp_path: Path) -> None:
    trained = GOOD.replace("num-heads: 2}", "num-heads: 2, trained: true}")
    with pytest.raises(PlanError, match="launcher tiny or llamafactory"):
        load_plan(write(tmp_path, trained + MINDSPEED))
    plan = load_plan(write(tmp_path, trained + LLAMAFACTORY))
    assert plan.serves_external_training
    # Outside pytest (llmqual serve, llmqual model) there is no session run whose checkpoint could be served.
    with pytest.raises(PlanError, match=r"model\.tiny\.trained: the served model is the checkpoint"):
        resolve_model(plan, tmp_path / "cache")


@pytest.mark.parametrize(
    ("section", "key"),
    [("server: {cpus: [4096]}", "server.cpus"), ("suites: {load: {client-cpus: [4096]}}", "suites.load.client-cpus")],
)
def test_cores_this_machine_cannot_use_stop_the_run(tmp_path: Path, section: str, key: str) -> None:
    text = GOOD.replace("server:\n", "server:\n  cpus: [4096]\n") if key == "server.cpus" else GOOD + section
    plan = load_plan(write(tmp_path, text))
    with pytest.raises(PlanError) as info:
        plan.check_runnable()
    assert key in str(info.value)
    assert "[4096] are not usable here" in str(info.value)


@pytest.mark.parametrize("cpus", ["[]", "[1, 1]", "[-1]"])
def test_server_cpus_must_be_distinct_cores(tmp_path: Path, cpus: str) -> None:
    with pytest.raises(PlanError, match="cpus must be a non-empty list of distinct core numbers"):
        load_plan(write(tmp_path, GOOD.replace("server:\n", f"server:\n  cpus: {cpus}\n")))


@pytest.mark.parametrize("key", ["height", "width"])
def test_an_image_size_of_zero_is_refused_naming_the_key(tmp_path: Path, key: str) -> None:
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, GOOD + f"suites:\n  multimodal: {{{key}: 0}}\n"))
    assert f"suites.multimodal.{key}" in str(info.value)


def test_server_devices_the_node_lacks_are_refused_before_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card named in server.devices must have its device file here (on an 8-card node, /dev/davinci0..7)."""
    from harness.runtime import leases

    dev = tmp_path / "dev"
    dev.mkdir()
    for card in (0, 1):
        (dev / f"davinci{card}").touch()
    monkeypatch.setattr(leases, "DEV", dev)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    text = GOOD.replace("tiny: {hidden-size: 128, num-heads: 2}", "path: m").replace("platform: cpu", "platform: npu")
    fitting = load_plan(write(tmp_path, text.replace("max-model-len: 512", "max-model-len: 512\n  devices: [0, 1]")))
    fitting.check_runnable()
    plan = load_plan(write(tmp_path, text.replace("max-model-len: 512", "max-model-len: 512\n  devices: [1, 2, 3]")))
    with pytest.raises(PlanError) as info:
        plan.check_runnable()
    assert info.value.key == "server.devices"
    assert "[2, 3]" in str(info.value)
    assert "davinci2" in str(info.value)
