"""The llmqual pytest plugin's entry point: it loads the plugin modules (one per concern, `harness.plugins`) and
the feature plugins, registers the markers, and configures the session in order: the plans first (bad input stops
the run before collection), then the run folder, which names the plan.
"""

from __future__ import annotations

import signal

import pytest

from harness.runtime.interrupt import raise_keyboard_interrupt

# Listed, not imported: pytest imports them itself, so their asserts are rewritten.
pytest_plugins = [
    "harness.plugins.plans",
    "harness.plugins.servers",
    "harness.plugins.recording",
    "harness.plugins.progress",
    "harness.plugins.reporting",
    "harness.training.fixtures",
    "harness.profile.fixtures",
    "harness.diffusion.fixtures",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("llmqual", "llmqual qualification harness").addoption(
        "--explain",
        action="store_true",
        help="print what a run of the plan would start (argv, environment, devices, files) and start nothing",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    from harness.explain.command import pytest_explain
    from harness.plugins.markers import MARKERS
    from harness.plugins.plans import configure_plans
    from harness.plugins.recording import open_run
    from harness.plugins.reporting import RunRecorder

    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")
    if config.option.help or getattr(config.option, "markers", False):
        return  # nothing runs: no plan to check, no run folder to write
    # SIGTERM (CI cancelling, `timeout`) must run the same teardown as Ctrl-C: no server may outlive pytest.
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    pytest_explain(config)  # with --explain: the rehearsal, then the session ends
    plans = configure_plans(config)
    run = open_run(config, plans)
    config.pluginmanager.register(RunRecorder(config, run), "llmqual-recorder")
