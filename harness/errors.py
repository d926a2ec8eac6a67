"""The harness's exceptions, in one place.

    HarnessError
    ├── PlanError             a plan file is invalid: names the file, the key and the fix
    ├── PlatformError         the requested platform is absent or misconfigured
    ├── ModelBuildError       the tiny model could not be built
    ├── ProcessFailed         a child run to its end failed or missed its deadline (carries the log tail)
    │   └── TrainingError     ... a training run (or it wrote no readable log)
    └── ServerError
        ├── ServerStartError  the server died or missed its readiness deadline (carries the log tail)
        ├── ServerStopped     the server stopped answering in the middle of a case (timed out or refused, no /health)
        └── EndpointError     an external endpoint is unreachable or does not serve what was asked

Errors of libraries underneath (subprocess, aiohttp, pydantic, yaml) are translated into these at the boundary.
A failed benchmark request is not an exception: it is recorded as data by the client.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class PlanError(HarnessError):
    """A plan is invalid. The message names the file, the key and how to fix it."""

    def __init__(self, path: str, key: str, problem: str, fix: str = "") -> None:
        self.path = path
        self.key = key
        self.problem = problem
        self.fix = fix
        where = f"{path}: {key}" if key else path
        message = f"{where}: {problem}"
        if fix:
            message += f" (fix: {fix})"
        super().__init__(message)


class PlatformError(HarnessError):
    """The platform a plan targets is not usable here."""


class ModelBuildError(HarnessError):
    """Building the tiny model failed."""


class ProcessFailed(HarnessError):
    """A child process run to its end (harness.runtime.process.run_to_end) exited non-zero or missed its deadline."""


class TrainingError(ProcessFailed):
    """A training run failed, wrote no readable log, or did not finish in time."""


class ServerError(HarnessError):
    """A model server could not be used."""


class ServerStartError(ServerError):
    """The server exited or missed its readiness deadline; `log_tail` holds its last log lines."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        full = message if not log_tail else f"{message}\n--- last lines of the server log ---\n{log_tail}"
        super().__init__(full)


class ServerStopped(ServerError):
    """The server stopped answering during a measurement: a request timed out or was refused and /health failed.
    The case ends there (its repeats already measured are on disk); waiting out every request would cost the
    request timeout per wave, per repeat, per case."""


class EndpointError(ServerError):
    """An external endpoint is unreachable or does not serve the expected model."""
