"""The AscendCloud tools' command lines on `llmqual bench` and `llmqual dataset`: options, refusals before any
request, the CSV bytes, the console lines, the acceptance columns and the vLLM result file."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from harness.bench import ascendcloud
from harness.bench.cases import BenchInputError, StaticCase
from harness.cli import main
from harness.client.openai import RequestRecord
from harness.load.samples import Sample
from harness.metrics.spec import acceptance_rates, acceptance_summary
from harness.results.csv_layouts import sort_rows
from harness.results.vllm_format import busiest_second, vllm_result
from tests.fakes import FakeOpenAIServer, fake_server_thread

# A CSV benchmark_parallel.py wrote on a 910B node (7 concurrencies x 3 input lengths).
REAL_CSV = Path(__file__).parent / "data" / "ascendcloud" / "benchmark_parallel_910b.csv"
DEAD_URL = "http://127.0.0.1:9"
STATIC_HEADER = (
    "输入长度,输出长度,并发数,输出tokens总吞吐,首tokens时延TP90（ms）,首tokens时延TP99（ms）,最大首tokens时延（ms）,"
    "平均首tokens时延（ms）,增量时延TP90（ms）,增量时延TP99（ms）,最大增量时延（ms）,平均增量时延（ms）"
)


def _where(**given: object) -> ascendcloud.Target:
    args = {"backend": "openai", "host": "127.0.0.1", "port": 9288, "url": None, "base_url": None, **given}
    return ascendcloud.target(argparse.Namespace(**args), "completions")


def test_the_scripts_connection_options_name_the_server_and_route() -> None:
    assert _where(host="10.0.0.7", port=8080) == ascendcloud.Target("http://10.0.0.7:8080", "completions")
    assert _where(backend="vllm").route == "completions", "vLLM has no /generate any more: its OpenAI route"
    assert _where(backend="openai-chat").route == "chat"
    apig = _where(url="https://apig.example.com/v1/infers/abc/v1/completions")
    assert apig == ascendcloud.Target("https://apig.example.com/v1/infers/abc", "completions")
    assert _where(url="http://h:1/v1/chat/completions").route == "chat"
    assert _where(url="http://h:1/v1", base_url=None).base_url == "http://h:1"
    assert _where(base_url="http://b:2/", url="http://h:1/v1/completions").base_url == "http://b:2"
    with pytest.raises(BenchInputError, match="--url http://h:1/generate: expected a URL ending in /v1/completions"):
        _where(url="http://h:1/generate")


STATIC = ["bench", "static", "--tokenizer", "/nonexistent", "--host", "127.0.0.1", "--port", "9"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "tgi"], "'tgi' is not a back end llmqual measures (it speaks vLLM's OpenAI API); use one of "
         "openai, vllm, openai-chat"),
        (["--dataset-type", "alpaca"], "invalid choice: 'alpaca' (choose from 'random', 'sharegpt', 'human-eval')"),
        (["--prompt-tokens", "64", "128", "--output-tokens", "8"], "pair one to one"),
        (["--prompt-tokens", "64", "--output-tokens", "8", "--enable-prefix-caching", "--prefix-caching-num", "64"],
         "--prefix-caching-num 64 must be below every --prompt-tokens value ([64])"),
        (["--prompt-tokens", "64", "--output-tokens", "8", "--enable-prefix-caching", "True"],
         "--enable-prefix-caching needs --prefix-caching-num"),
        (["--prompt-tokens", "64", "--output-tokens", "8", "--dataset-type", "sharegpt"], "needs --dataset-path"),
        (["--prompt-tokens", "64", "--output-tokens", "8", "--url", "http://h:1/generate"], "--url http://h:1/generate"),
    ],
)  # fmt: skip
def test_bad_static_lines_are_refused_before_any_request(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    usage_error = "invalid choice" in message or "back end" in message  # argparse's, exit status 2 too
    with pytest.raises(SystemExit) if usage_error else contextlib.nullcontext():
        assert main([*STATIC, *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "cannot load a tokenizer" not in err
    assert "not reachable" not in err
    assert not list(tmp_path.iterdir()), "nothing written"


def test_an_existing_csv_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "benchmark_parallel.csv"
    existing.write_text("keep me\n")
    code = main([*STATIC, "--prompt-tokens", "64", "--output-tokens", "8", "--benchmark-csv", str(existing)])
    assert code == 2
    assert f"--benchmark-csv {existing} exists" in capsys.readouterr().err
    assert existing.read_text() == "keep me\n"


def _static_line(endpoint_url: str, tokenizer: Path, csv_path: Path, *extra: str) -> list[str]:
    host, port = endpoint_url.removeprefix("http://").split(":")
    return [
        "bench", "static", "--backend", "openai", "--host", host, "--port", port, "--tokenizer", str(tokenizer),
        "--epochs", "2", "--parallel-num", "1", "2", "--prompt-tokens", "16", "8", "--output-tokens", "4", "4",
        "--benchmark-csv", str(csv_path), "--num-warmups", "0", *extra,
    ]  # fmt: skip


def test_the_guides_static_line_writes_the_scripts_csv_bytes(
    tokenizer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = tmp_path / "benchmark_parallel.csv"
    with fake_server_thread("fast") as endpoint:
        assert main(_static_line(endpoint.base_url, tokenizer_dir, csv_path)) == 0
    raw = csv_path.read_bytes()
    sample = REAL_CSV.read_bytes()
    assert raw.split(b"\r\n")[0] == sample.split(b"\r\n")[0], "BOM and header as the real file"
    assert raw.decode("utf-8-sig").split("\r\n")[0] == STATIC_HEADER
    assert raw.endswith(b"\r\n"), "CRLF lines, as csv.writer writes"
    assert b"\n" not in raw.replace(b"\r\n", b"")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))[1:]
    assert [r[:3] for r in rows] == [
        ["8.0", "4.0", "1"],
        ["8.0", "4.0", "2"],
        ["16.0", "4.0", "1"],
        ["16.0", "4.0", "2"],
    ]
    out = capsys.readouterr()
    assert out.out.count("输出tokens总吞吐:") == 4
    assert out.out.count("增量时延TP99:") == 4
    assert "asked for 8 output tokens, the server counted 8 (its usage.completion_tokens); re-tokenising" in out.out
    assert "epoch: 100%|" in out.err, "a progress bar per epoch"
    assert "model name: fake (the server does not serve" in out.err


def test_app_code_is_sent_and_its_absence_is_named(
    tokenizer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fake_server_thread("apig") as endpoint:
        assert main(_static_line(endpoint.base_url, tokenizer_dir, tmp_path / "a.csv")) == 2
        assert "answered HTTP 401 (check --api-key / --app-code)" in capsys.readouterr().err
        line = _static_line(
            endpoint.base_url, tokenizer_dir, tmp_path / "b.csv", "--app-code", FakeOpenAIServer.APP_CODE
        )
        assert main(line) == 0
    assert (tmp_path / "b.csv").exists()


def test_spec_decode_columns_come_from_the_streamed_steps(tokenizer_dir: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "spec.csv"
    with fake_server_thread("spec") as endpoint:
        line = _static_line(endpoint.base_url, tokenizer_dir, csv_path, "--use-spec-decode")
        line[line.index("--output-tokens") + 1 : line.index("--output-tokens") + 3] = ["7", "7"]
        assert main([*line, "--num-speculative-tokens", "3"]) == 0
    header, *rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))
    assert header[-5:] == ["投机接受率TP90", "投机接受率TP99", "投机最大接受率", "投机最小接受率", "投机平均接受率"]
    # 7 tokens in 3 events: (7 - 1) / ((3 - 1) * (3 + 1)) = 0.75 for every request
    assert {tuple(r[-5:]) for r in rows} == {("0.75",) * 5}


def test_acceptance_rate_is_the_scripts_formula() -> None:
    records = [
        RequestRecord(content_times=[1.0, 2.0, 3.0], completion_tokens=7),  # 6 / (2 * 4)
        RequestRecord(content_times=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], completion_tokens=7),  # 6 / (6 * 4)
        RequestRecord(content_times=[1.0], completion_tokens=1),  # one event: no rate
        RequestRecord(content_times=[1.0, 2.0], completion_tokens=5, error="stream"),  # failed: no rate
    ]
    assert acceptance_rates(records, 3) == [0.75, 0.25]
    summary = acceptance_summary(records, 3)
    assert summary["max_spec_acceptance_rate"] == 0.75
    assert summary["min_spec_acceptance_rate"] == 0.25
    assert summary["mean_spec_acceptance_rate"] == 0.5
    assert acceptance_summary([], 3)["p90_spec_acceptance_rate"] is None


def test_benchmark_serving_max_tokens_limits_prompt_and_answer_together() -> None:
    samples = [Sample("a", 100, 50), Sample("b", 3, 50), Sample("c", 600, 500), Sample("d", 950, 10)]
    kept = ascendcloud.serving_select(samples, max_tokens=1024, max_prompt_tokens=900)
    assert [(s.prompt, s.prompt_len, s.output_len) for s in kept] == [("a", 100, 50), ("c", 600, 424)]


def test_static_dataset_prompts_keep_their_lengths() -> None:
    import numpy as np

    samples = [Sample("a", 10, 40), Sample("b", 2000, 5), Sample("c", 30, 3)]
    picked = ascendcloud.static_dataset_samples(samples, 4, 16, np.random.default_rng(0), "sharegpt")
    assert sorted({(s.prompt, s.prompt_len, s.output_len) for s in picked}) == [("a", 10, 16), ("c", 30, 16)]
    real = ascendcloud.static_dataset_samples(samples, 2, None, np.random.default_rng(0), "sharegpt")
    assert {(s.prompt, s.output_len) for s in real} == {("a", 40)}, "c's answer of 3 tokens is filtered out"


def test_sorting_keeps_bom_header_and_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes("\ufeffa,b,c\r\n2,1,9\r\n1,5,8\r\n1,2,7\r\n".encode())
    sort_rows(path, [0, 1])
    assert path.read_bytes() == "\ufeffa,b,c\r\n1,2,7\r\n1,5,8\r\n2,1,9\r\n".encode()


def test_epoch_bar_counts_waves_of_the_parallel_requests() -> None:
    out = io.StringIO()
    with ascendcloud.EpochBar(StaticCase(2, 8, 4, 3), out) as bar:
        for done in range(1, 7):
            bar.update("c", done, 6)
    drawn = out.getvalue()
    assert drawn.count("\r") == 4, "0, 1, 2 and 3 epochs drawn once each"
    assert drawn.endswith("| 3/3\n")


def test_dataset_tools_options_as_written(
    tokenizer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data.json"
    assert main([
        "dataset", "generate", "--dataset", str(data), "--tokenizer", str(tokenizer_dir), "--num-requests", "6",
        "--min-input", "4", "--max-input", "30", "--avg-input", "12", "--std-input", "4",
        "--min-output", "2", "--max-output", "9", "--avg-output", "5", "--std-output", "2",
    ]) == 0  # fmt: skip
    records = json.loads(data.read_text())
    assert len(records) == 6
    assert set(records[0]) == {"input", "output", "instruction"}
    assert main(["dataset", "generate", "--dataset", str(data), "--tokenizer", str(tokenizer_dir)]) == 2
    assert f"--dataset {data} exists" in capsys.readouterr().err

    gbk = tmp_path / "qa.jsonl"
    gbk.write_bytes(
        '{"sys": "你是助手", "q": "一加一", "a": "二"}\n{"sys": "", "q": "二加二", "a": "四"}\n'.encode("gbk")
    )
    out = tmp_path / "sharegpt.json"
    base = ["dataset", "to-sharegpt", "--input_file_path", str(gbk), "--input_name", "q", "--output_name", "a"]
    assert main([*base, "--out_file_name", str(out), "--prefix_name", "sys"]) == 2
    assert f"--input_file_path {gbk} is not utf-8 text" in capsys.readouterr().err
    assert main([*base, "--out_file_name", str(out), "--prefix_name", "sys", "--code_type", "klingon"]) == 2
    assert "--code_type klingon: not an encoding" in capsys.readouterr().err
    assert not out.exists()
    assert main([*base, "--out_file_name", str(out), "--prefix_name", "sys", "--code_type", "gbk"]) == 0
    first = json.loads(out.read_text())[0]["conversations"]
    assert first == [{"from": "human", "value": "你是助手\n一加一"}, {"from": "gpt", "value": "二"}]
    plain = tmp_path / "plain.json"
    assert main([*base, "--out_file_name", str(plain), "--prefix_name", "None", "--code_type", "gbk"]) == 0
    assert json.loads(plain.read_text())[0]["conversations"][0]["value"] == "一加一"


def test_vllm_result_has_vllms_fields_in_vllms_order() -> None:
    records = [
        RequestRecord(sent=10.0, released=9.5, content_times=[10.2, 10.3, 10.4], end=10.4, completion_tokens=3,
                      prompt_tokens=5, text="abc"),
        RequestRecord(sent=10.1, content_times=[11.5, 11.7], end=11.7, completion_tokens=2, prompt_tokens=5, text="ab"),
    ]  # fmt: skip
    assert busiest_second(records) == (3.0, 2)
    metrics = {
        "duration": 1.7, "completed": 2, "failed": 0, "total_input_tokens": 10, "total_output_tokens": 5,
        "request_throughput": 1.2, "request_goodput": None, "output_throughput": 2.9, "total_token_throughput": 8.8,
        **{f"{s}_{m}_ms": 1.0 for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "median", "std", "p99")},
    }  # fmt: skip
    document = {"config": {"request_rate": float("inf"), "burstiness": 1.0, "max_concurrency": None,
                           "num_requests": 2, "model": "m", "tokenizer": "/t"}, "metrics": metrics}  # fmt: skip
    result = vllm_result(document, records, "openai", "lbl", "org/model", {"tp": "1"}, detailed=True)
    assert list(result)[:12] == [
        "date", "endpoint_type", "backend", "label", "model_id", "tokenizer_id", "num_prompts", "tp",
        "request_rate", "burstiness", "max_concurrency", "duration",
    ]  # fmt: skip
    assert result["request_rate"] == "inf"
    assert result["queue_times"] == [0.5, 0.0]
    assert result["latencies"] == pytest.approx([0.4, 1.6])
    assert result["itls"][0] == pytest.approx([0.1, 0.1])
    assert result["start_times"] == pytest.approx([0.0, 0.1])
    plain = vllm_result(document, records, "openai")
    assert "itls" not in plain
    assert "latencies" in plain
    assert plain["p99_itl_ms"] == 1.0
    assert "p99_e2el_ms" not in plain, "vLLM's default --percentile-metrics: ttft, tpot, itl"


def test_a_static_sharegpt_line_reports_the_datasets_lengths(tokenizer_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "sharegpt.json"
    turns = [("one two three four five", "a b c d e f"), ("six seven eight nine ten eleven twelve", "g h i j k")]
    data.write_text(json.dumps([
        {"id": str(i), "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        for i, (q, a) in enumerate(turns)
    ]))  # fmt: skip
    csv_path = tmp_path / "b.csv"
    with fake_server_thread("fast") as endpoint:
        line = _static_line(endpoint.base_url, tokenizer_dir, csv_path, "--dataset-type", "sharegpt")
        assert main([*line, "--dataset-path", str(data)]) == 0
    rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8-sig"))))[1:]
    lengths = {float(r[0]) for r in rows}
    assert lengths != {16.0, 8.0}, "--prompt-tokens is ignored: the prompts keep their own lengths"
    assert {float(r[1]) for r in rows} == {4.0}, "--output-tokens still asked for"
    assert [r[2] for r in rows] == ["1", "1", "2", "2"], "sorted by concurrency, as the script sorts dataset runs"
