"""Benchmark cases and the settings they share, from a plan or from `llmqual bench` options.

Lists that pair one to one (prompt-tokens with output-tokens, request-rate with num-prompts) are checked here,
before any case runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.client.openai import Route
from harness.config.suites import LoadSpec
from harness.errors import HarnessError
from harness.metrics.health import ClientLimits
from harness.metrics.serving import SLO


class BenchInputError(HarnessError):
    """A benchmark was asked for something it cannot run; raised before any request is sent."""


_SPEC = LoadSpec()


@dataclass(frozen=True)
class LoadSettings:
    """How requests are sent and judged, shared by every case of a run. Plans and `llmqual bench` build it from a
    `LoadSpec` (`from_spec`), whose defaults are the only ones; constructed bare (library callers, tests) it has no
    measurement protocol: no warm-up, no minimum window."""

    route: Route = _SPEC.endpoint_type
    ignore_eos: bool = _SPEC.ignore_eos
    seed: int = _SPEC.seed
    request_timeout_s: float = _SPEC.request_timeout_s
    case_deadline_s: float = _SPEC.case_deadline_s
    limits: ClientLimits = field(default_factory=ClientLimits)
    save_records: bool = True
    extra_body: dict[str, object] = field(default_factory=dict)
    # The measurement protocol (harness.bench.protocol): warm-up, and the least a repeat must send and last.
    warmup_requests: int = 0
    min_requests: int = 0
    min_seconds: float = 0.0
    client_cpus: tuple[int, ...] | None = None  # the cores the client runs on while it sends (harness.runtime.affinity)
    client_workers: int = 1  # processes the requests are sharded over (harness.load.workers), one core each
    progress: Callable[[str, int, int], None] | None = None  # (case id, requests done, requests in all)
    num_speculative_tokens: int = -1  # the server's k: >= 0 adds per-request acceptance rates (harness.metrics.spec)

    @classmethod
    def from_spec(cls, spec: LoadSpec, num_speculative_tokens: int = -1) -> LoadSettings:
        """The settings a plan's `suites.load` section (or `llmqual bench`'s options, as a LoadSpec) asks for."""
        return cls(
            route=spec.endpoint_type,
            ignore_eos=spec.ignore_eos,
            seed=spec.seed,
            request_timeout_s=spec.request_timeout_s,
            case_deadline_s=spec.case_deadline_s,
            limits=ClientLimits(spec.max_p99_lag_ms, spec.min_rate_fraction, spec.max_ttft_overhead),
            save_records=spec.save_records,
            warmup_requests=spec.warmup_requests,
            min_requests=spec.min_requests,
            min_seconds=spec.min_seconds,
            client_cpus=spec.client_cpus,
            client_workers=spec.client_workers,
            num_speculative_tokens=num_speculative_tokens,
        )

    def with_progress(self, progress: Callable[[str, int, int], None]) -> LoadSettings:
        return dataclasses.replace(self, progress=progress)


@dataclass(frozen=True)
class StaticCase:
    """Closed loop: `parallel` requests in flight, `parallel * epochs` in all, exact lengths."""

    parallel: int
    prompt_tokens: int
    output_tokens: int
    epochs: int

    @property
    def id(self) -> str:
        return f"p{self.parallel}-in{self.prompt_tokens}-out{self.output_tokens}"

    @property
    def num_requests(self) -> int:
        return self.parallel * self.epochs

    @classmethod
    def covering(cls, parallel: int, prompt_tokens: int, output_tokens: int, requests: int) -> StaticCase:
        """The case sending at least `requests` in whole waves of `parallel`."""
        return cls(parallel, prompt_tokens, output_tokens, max(1, -(-requests // parallel)))


@dataclass(frozen=True)
class DynamicCase:
    """Open loop: `num_prompts` requests arriving at `request_rate` per second (inf: all at once)."""

    request_rate: float
    num_prompts: int
    burstiness: float = 1.0
    max_concurrency: int | None = None
    slo: SLO = field(default_factory=SLO)

    @property
    def id(self) -> str:
        rate = "inf" if math.isinf(self.request_rate) else f"{self.request_rate:g}"
        return f"rate{rate}-n{self.num_prompts}" + (f"-c{self.max_concurrency}" if self.max_concurrency else "")


def _paired(a: Sequence[object], b: Sequence[object], names: tuple[str, str]) -> None:
    if len(a) != len(b):
        raise BenchInputError(
            f"{names[0]} has {len(a)} values and {names[1]} {len(b)}: they pair one to one, give the same number"
        )


def static_cases(
    parallel: Sequence[int], prompt_tokens: Sequence[int], output_tokens: Sequence[int], epochs: int
) -> list[StaticCase]:
    """Every parallel-num for every (prompt-tokens[i], output-tokens[i]) pair, lengths outermost."""
    _paired(prompt_tokens, output_tokens, ("--prompt-tokens", "--output-tokens"))
    if epochs < 1 or not parallel or min(parallel) < 1:
        raise BenchInputError("--parallel-num values and --epochs must be at least 1")
    return [StaticCase(n, p, o, epochs) for p, o in zip(prompt_tokens, output_tokens, strict=True) for n in parallel]


def dynamic_cases(
    rates: Sequence[float],
    num_prompts: Sequence[int],
    burstiness: float = 1.0,
    max_concurrency: int | None = None,
    slo: SLO | None = None,
) -> list[DynamicCase]:
    _paired(rates, num_prompts, ("--request-rate", "--num-prompts"))
    if any(not r > 0 for r in rates) or min(num_prompts, default=0) < 1:
        raise BenchInputError("request rates must be positive (inf for all at once), num-prompts at least 1")
    slo = slo or SLO()
    return [DynamicCase(r, n, burstiness, max_concurrency, slo) for r, n in zip(rates, num_prompts, strict=True)]


def check_fits(prompt_len: int, output_len: int, max_model_len: int | None, what: str) -> None:
    """A request that cannot fit the server's context is refused before the case starts."""
    if max_model_len is not None and prompt_len + output_len > max_model_len:
        raise BenchInputError(
            f"{what}: prompt {prompt_len} + output {output_len} tokens exceed the server's max-model-len "
            f"{max_model_len}; shorten the case or filter the dataset (--max-prompt-tokens / --max-tokens)"
        )
