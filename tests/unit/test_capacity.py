"""The capacity probe's search, its reading of vLLM's KV lines, its plan section and its table (no engines)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.capacity.kv_report import kv_capacity, kv_refusal
from harness.capacity.memory import CapacityInputError, check_fits_at_start, kv_bytes_per_token
from harness.capacity.probe import ProbeFailed, attempt_length
from harness.capacity.search import Attempt, Bounds, search
from harness.capacity.table import ProbeRow, read_table, table_csv, write_table
from harness.config.capacity import CapacitySpec
from harness.config.plan import ServerSpec, load_plan
from harness.errors import ServerStartError
from harness.load.tokens import Tokens
from harness.runtime.leases import LeaseError
from harness.server.endpoint import Endpoint
from harness.server.vllm import ServerConfig
from tests.fakes import fake_server_thread

# vLLM 0.32's lines, as a CPU server with VLLM_CPU_KVCACHE_SPACE=1 and a 64 KiB-per-token model wrote them here.
STARTED = (
    "(EngineCore pid=1019) INFO 11-30 18:05:27 [kv_cache_utils.py:2327] CPU KV cache size: 16,384 tokens, "
    "Maximum concurrency for 15,360 tokens per request: 1.07x\n"
)
REFUSED = (
    "(EngineCore pid=912) ERROR 11-30 18:04:50 [core.py:1510] ValueError: To serve at least one request with the "
    "model's max seq len (16384), (1.0 GiB KV cache is needed, which is larger than the available KV cache memory "
    "(0.99 GiB). Based on the available memory, the estimated maximum model length is 16256. Try increasing "
    "`gpu_memory_utilization` (which also controls CPU memory on the CPU backend) or decreasing `max_model_len` when "
    "initializing the engine. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.\n"
)


def test_reads_the_kv_lines_vllm_writes() -> None:
    capacity = kv_capacity("noise\n" + STARTED)
    assert capacity is not None
    assert (capacity.tokens, capacity.max_model_len, capacity.concurrency) == (16384, 15360, 1.07)
    refusal = kv_refusal(REFUSED)
    assert refusal is not None
    assert (refusal.max_model_len, refusal.estimated_max_len, refusal.available_gib) == (16384, 16256, 0.99)
    assert kv_refusal(STARTED) is None
    assert kv_capacity(REFUSED) is None
    assert kv_refusal("ValueError: No available memory for the cache blocks.") is None


class KVEngine:
    """A stand-in for vLLM's KV admission: `capacity` tokens of cache, one block reserved, `block` tokens per block.
    Reports what vLLM reports: the cache size on a start, its estimate on a refusal."""

    def __init__(self, capacity: int, block: int = 128, report: bool = True, bench_limit: int | None = None):
        self.capacity, self.block, self.report, self.bench_limit = capacity, block, report, bench_limit
        self.started: list[int] = []

    def __call__(self, length: int) -> Attempt:
        self.started.append(length)
        usable = self.capacity - self.block
        if length > usable:
            return Attempt(length, False, "refused", estimated_max_len=usable if self.report else None)
        if self.bench_limit is not None and length > self.bench_limit:
            return Attempt(length, False, "benchmark failed", kv_tokens=self.capacity if self.report else None)
        return Attempt(length, True, "served", kv_tokens=self.capacity if self.report else None)


@pytest.mark.parametrize("capacity", [16384, 32768, 9000, 70000])
def test_the_search_closes_on_the_longest_length_that_serves(capacity: int) -> None:
    bounds = Bounds(start=4096, max_length=65536, granularity=1024)
    for reported in (True, False):
        engine = KVEngine(capacity, report=reported)
        found = search(bounds, engine, deadline_s=3600)
        usable = capacity - 128
        expected = min(usable // 1024 * 1024, 65536)
        assert found.fits == expected
        assert found.complete
        if expected < 65536:
            assert found.refused == expected + 1024
    # With vLLM's reports the search ends in three starts: the first length, the answer, the one above.
    engine = KVEngine(16384)
    search(bounds, engine, deadline_s=3600)
    assert engine.started == [4096, 16384, 15360]


def test_without_reports_it_is_the_guides_doubling_and_bisection() -> None:
    engine = KVEngine(16384, report=False)
    search(Bounds(4096, 65536, 1024), engine, deadline_s=3600)
    assert engine.started == [4096, 8192, 16384, 12288, 14336, 15360]


def test_a_benchmark_failure_below_the_reported_capacity_bisects_with_real_starts() -> None:
    engine = KVEngine(32768, bench_limit=20000)
    found = search(Bounds(4096, 65536, 1024), engine, deadline_s=3600)
    assert found.fits == 19456
    assert found.refused == 20480
    assert all(length in engine.started for length in (found.fits, found.refused))


def test_a_first_length_that_fails_ends_the_search() -> None:
    engine = KVEngine(2048)
    found = search(Bounds(4096, 65536, 1024), engine, deadline_s=3600)
    assert found.fits is None
    assert engine.started == [4096]
    assert found.complete


def test_the_deadline_stops_the_search_and_keeps_the_bracket() -> None:
    now = [0.0]

    def slow(length: int) -> Attempt:
        now[0] += 100
        return KVEngine(16384, report=False)(length)

    found = search(Bounds(4096, 65536, 1024), slow, deadline_s=250, clock=lambda: now[0])
    assert [a.length for a in found.attempts] == [4096, 8192, 16384]
    assert found.stopped
    assert "deadline" in found.stopped
    assert not found.complete
    assert (found.fits, found.refused) == (8192, 16384)


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ({"tensor-parallel": [2, 1]}, "must be increasing card counts"),
        ({"kv-cache-gib": [2, 1]}, "must be increasing whole GiB"),
        ({"start": 8192, "max-length": 4096}, "below start"),
        ({"bench": {"prompt-tokens": 4096}}, "exceed start"),
        ({"granularity": 8192}, "coarser than start"),
    ],
)
def test_bad_sections_are_refused(section: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        CapacitySpec.model_validate(section)


def test_a_plan_whose_first_length_cannot_fit_is_refused_before_any_start(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    config = {"num_hidden_layers": 4, "num_attention_heads": 8, "hidden_size": 128, "head_dim": 256}
    (model / "config.json").write_text(json.dumps(config))
    assert kv_bytes_per_token(model, "float32", "auto") == 64 * 1024
    assert kv_bytes_per_token(model, "bfloat16", "auto") == 32 * 1024
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(
        "name: p\nplatform: cpu\nmodel: {path: model}\nserver: {dtype: float32}\n"
        "suites:\n  capacity: {start: 32768, kv-cache-gib: [1, 2]}\n"
    )
    plan = load_plan(plan_file)
    assert plan.suites.capacity is not None
    with pytest.raises(CapacityInputError, match=r"does not fit at the smallest length \(32768 tokens\) on 1 card"):
        check_fits_at_start(plan, plan.suites.capacity, model)
    check_fits_at_start(plan, plan.suites.capacity.model_copy(update={"start": 8192}), model)


def test_the_table_is_written_after_each_probe(tmp_path: Path) -> None:
    row = ProbeRow("tiny", 1, "KV 1 GiB", 15360, 16384, "refused", True, 16256, 3, 101.26, True)
    write_table([row], tmp_path)
    text = table_csv([row])
    assert text.splitlines()[1] == "tiny,1,KV 1 GiB,15K,15360,16384,True,16256,3,101.3,True,"
    assert (tmp_path / "capacity.csv").read_text() == text
    assert read_table(tmp_path)[0]["max_model_len_k"] == "15K"
    assert read_table(tmp_path / "none") == []


class PlantedPool:
    """A server pool whose start fails as planted (its log written as vLLM would), or that serves through a fake
    endpoint: the probe's reading of a failed length, without engines."""

    def __init__(self, tmp: Path, log: str = "", fails: Exception | None = None, endpoint: Endpoint | None = None):
        self.log, self.fails, self.endpoint = tmp / "server.log", fails, endpoint
        self.log.write_text(log)
        self.closed = False

    def log_path(self, config: ServerConfig) -> Path:
        return self.log

    def get(self, config: ServerConfig) -> Any:
        if self.fails is not None:
            raise self.fails
        return SimpleNamespace(endpoint=self.endpoint)

    def close(self) -> None:
        self.closed = True


def _attempt(pool: PlantedPool, tokens: Tokens) -> Attempt:
    bench = {"prompt-tokens": 5, "output-tokens": 4, "parallel-num": 2}  # the fake reports 5 prompt tokens
    spec = CapacitySpec.model_validate({"bench": bench})
    config = ServerConfig("cpu", Path("/m"), ServerSpec(served_model_name="m", max_model_len=4096))
    return attempt_length(pool, config, tokens, spec, seed=0)


def test_only_vllms_refusal_or_an_out_of_memory_counts_as_not_fitting(tmp_path: Path, tokens: Tokens) -> None:
    refused = _attempt(PlantedPool(tmp_path, REFUSED, ServerStartError("exited with 1")), tokens)
    assert (refused.fits, refused.refused_by_engine) == (False, True)
    oom_line = "torch.OutOfMemoryError: CPU out of memory. Tried to allocate 2.00 GiB"
    oom = _attempt(PlantedPool(tmp_path, f"INFO loading\n{oom_line}\n", ServerStartError("exited with 1")), tokens)
    assert oom.fits is False
    assert oom.reason == f"out of memory at start: {oom_line}"


@pytest.mark.parametrize(
    ("pool_of", "fragment"),
    [
        (lambda tmp: PlantedPool(tmp, "ImportError: no module\n", ServerStartError("exited with 1")), "neither vLLM's"),
        (lambda tmp: PlantedPool(tmp, "", ServerStartError("not ready within 12 s")), "not ready within 12 s"),
        (lambda tmp: PlantedPool(tmp, "", LeaseError("cards 0-7 held by pid 4242")), "no cards to lease"),
    ],
)
def test_any_other_failed_start_stops_the_probe_naming_the_length(
    tmp_path: Path, tokens: Tokens, pool_of: Any, fragment: str
) -> None:
    pool = pool_of(tmp_path)
    with pytest.raises(ProbeFailed, match=f"max-model-len 4096: .*{fragment}"):
        _attempt(pool, tokens)


def test_a_failed_benchmark_at_a_length_that_started_stops_the_probe(tmp_path: Path, tokens: Tokens) -> None:
    with fake_server_thread("http500") as endpoint:
        pool = PlantedPool(tmp_path, STARTED, endpoint=endpoint)
        with pytest.raises(ProbeFailed, match=r"max-model-len 4096: the server started but the benchmark failed"):
            _attempt(pool, tokens)
    assert pool.closed, "the server is stopped whatever happened"
    with fake_server_thread("fast") as endpoint:
        served = _attempt(PlantedPool(tmp_path, STARTED, endpoint=endpoint), tokens)
    assert served.fits
    assert served.kv_tokens == 16384
