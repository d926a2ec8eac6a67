"""The harness's exceptions. The shared ones are defined here; each concern's own live beside its code, and every
one of them is in this tree (tests/unit/test_error_tree.py fails on one that is not).

    HarnessError                          every error the harness raises on purpose; the CLI prints it, exit 2
    ├── PlanError                         a plan file is invalid: names the file, the key and the fix
    ├── ModelBuildError                   the tiny model could not be built
    ├── ProcessFailed                     a child run to its end failed or missed its deadline (carries the log tail)
    │   └── TrainingError                 ... a training run (or it wrote no readable log)
    ├── ServerError
    │   ├── ServerStartError              the server died or missed its readiness deadline (carries the log tail)
    │   ├── ServerStopped                 the server stopped answering in the middle of a case (no /health)
    │   └── EndpointError                 an external endpoint is unreachable or does not serve what was asked
    ├── input refused before any work     each names the option or key and the fix
    │   ├── BenchInputError               llmqual bench (harness.bench.cases)
    │   ├── EvalInputError                llmqual eval (harness.accuracy.command)
    │   ├── DatasetCommandError           llmqual dataset (harness.load.command)
    │   ├── CapacityInputError            the capacity probe (harness.capacity.memory)
    │   ├── LaunchConfigError             a training launcher's section; turned into a PlanError (training.launchers)
    │   ├── TaskError                     an lm-eval task that does not exist (harness.accuracy.tasks)
    │   ├── DatasetError                  an unreadable or malformed dataset file (harness.load.datasets)
    │   ├── TokenizerError                a tokenizer that cannot be loaded or make a prompt (harness.load.tokens)
    │   └── LogFormatError                a training log no parser reads (harness.training.parsers)
    ├── the machine
    │   ├── LeaseError                    not enough free cards or cores before the deadline (harness.runtime.leases)
    │   ├── LockTimeout                   a cache lock not released in time (harness.runtime.locks)
    │   ├── ContainerError                docker refused to start or remove a container (harness.runtime.container)
    │   ├── ImageError                    the CPU base image could not be found or built (harness.runtime.image)
    │   ├── ReleaseError                  a vLLM release environment could not be made or asked (harness.runtime.venvs)
    │   ├── MetadataBlockError            the metadata address could not be blocked (harness.runtime.metadata)
    │   ├── DeviceIpError                 a card's IP could not be read (harness.deploy.device_ips)
    │   └── PreflightError                npu-smi or docker could not be read (harness.platform.readings)
    └── a measurement that could not finish
        ├── WorkerFailed                  a client worker died or did not answer in time (harness.load.workers)
        ├── AccuracyError                 no meaningful score: lm-eval failed, no log-probs (harness.accuracy.evaluate)
        ├── ProbeFailed                   a probe's length failed, not for not fitting (harness.capacity.probe)
        ├── ProfileError                  the profiler did not start, stop or write (harness.profile.capture)
        ├── DiffusionError                the diffusion pipeline's worker failed (harness.diffusion.pipeline)
        └── ComfyUIError                  ComfyUI refused a workflow or failed to run it (harness.diffusion.comfyui)

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
