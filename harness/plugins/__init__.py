"""The llmqual pytest plugin, one module per concern; `harness.plugin` is the entry point that loads them all.

- `markers`: the markers every test may carry.
- `plans`: which plan each platform's tests use (or why they skip), the cases a plan lists as parameters, the
  up-front checks of the selected tests and their order.
- `servers`: the served model for a test: pooled vLLM servers, deployments, `--endpoint`, the tokenizer.
- `recording`: the run folder, each case written and gated as it finishes (`record_case`).
- `progress`: how long cases report progress on the terminal.
- `reporting`: each test's outcome as it happens; at the end the run summary, the index entry and the report.

Feature plugins keep their fixtures beside their code: `harness.training.fixtures`, `harness.profile.fixtures`,
`harness.diffusion.fixtures`. Plugins share per-session values through the config stash (`stash`).
"""
