"""NPU containers through the docker CLI: the `docker run` a plan implies, `exec` into it, removal on every exit.

The arguments follow vllm-ascend's documented `docker run` for NPUs: one `--device=/dev/davinciN` per card plus
the three management devices, the driver, npu-smi, dcmi and `/etc/ascend_install.info` mounted read-only from the
host, host networking (the harness reaches the server on 127.0.0.1), and a shared-memory size. The container runs
`sleep infinity`; servers are started with `docker exec`. Leaving the context, or the harness exiting by any other
path (atexit), removes the container with `docker rm -f`, which ends everything inside it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Protocol

from harness.errors import HarnessError
from harness.runtime.metadata import MetadataBlock
from harness.runtime.sweep import RUN_ENV, owner_token

MANAGEMENT_DEVICES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
DRIVER_MOUNTS = (
    "/usr/local/dcmi",
    "/usr/local/bin/npu-smi",
    "/usr/local/Ascend/driver/lib64/",
    "/usr/local/Ascend/driver/version.info",
    "/etc/ascend_install.info",
)
DOCKER_TIMEOUT_S = 300.0
_LIVE: set[str] = set()


class ContainerSpec(Protocol):
    """What a container needs (the plan's `container` section, `harness.config.container.ContainerSpec`)."""

    @property
    def image(self) -> str: ...
    @property
    def shm_size(self) -> str: ...
    @property
    def work_dir(self) -> str | None: ...
    @property
    def mounts(self) -> Sequence[str]: ...
    @property
    def env(self) -> Mapping[str, str]: ...
    @property
    def block_metadata(self) -> bool: ...


class ContainerError(HarnessError):
    """docker refused to start or remove a container."""


def run_arguments(spec: ContainerSpec, npus: Sequence[int], name: str, labels: dict[str, str]) -> list[str]:
    """The `docker run` command line for `spec` with cards `npus`. Pure."""
    args = ["docker", "run", "--detach", "--name", name, "--network=host", f"--shm-size={spec.shm_size}"]
    args += [f"--label={k}={v}" for k, v in sorted(labels.items())]
    args += [f"--device=/dev/davinci{n}" for n in npus]
    args += [f"--device={d}" for d in MANAGEMENT_DEVICES]
    args += [f"--volume={path}:{path}:ro" for path in DRIVER_MOUNTS]
    if spec.work_dir:
        args += [f"--volume={spec.work_dir}:{spec.work_dir}", f"--workdir={spec.work_dir}"]
    args += [f"--volume={mount}" for mount in spec.mounts]
    args += [f"--env={k}" for k in sorted(spec.env)]  # values from docker's environment, off the command line
    return [*args, spec.image, "sleep", "infinity"]


def _docker(args: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> str:
    """Run a docker command; `env` adds variables docker passes on by name (`--env=NAME`)."""
    full_env = {**os.environ, **env} if env else None
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, check=False, env=full_env)
    except FileNotFoundError as exc:
        raise ContainerError(
            "docker is not installed (or not on PATH); the plan runs its server in a container"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ContainerError(f"docker did not {what} within {DOCKER_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        raise ContainerError(f"docker could not {what}: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def remove(name: str) -> None:
    """Remove a container and everything running in it (idempotent)."""
    with contextlib.suppress(ContainerError):
        _docker(["docker", "rm", "--force", name], f"remove {name}")
    _LIVE.discard(name)


@atexit.register
def _remove_leftovers() -> None:
    for name in list(_LIVE):
        remove(name)


class Container:
    """A running NPU container; `exec_argv` wraps a command to run inside it."""

    def __init__(self, spec: ContainerSpec, npus: Sequence[int], run_id: str | None = None) -> None:
        self.spec, self.npus = spec, list(npus)
        self.name = f"llmqual-{uuid.uuid4().hex[:10]}"
        run_id = run_id if run_id is not None else os.environ.get(RUN_ENV, "")
        owner = {"llmqual.owner": owner_token()}  # a later run removes it if the harness dies without doing so
        self.labels = {"llmqual": "1", **owner, **({"llmqual.run": run_id} if run_id else {})}
        self.id: str | None = None
        self._block: MetadataBlock | None = None

    def __enter__(self) -> Container:
        _LIVE.add(self.name)  # registered first: a run that fails half-way is still removed
        try:
            args = run_arguments(self.spec, self.npus, self.name, self.labels)
            self.id = _docker(args, f"start {self.spec.image}", env=self.spec.env)
            if self.spec.block_metadata:
                pid = _docker(["docker", "inspect", "--format", "{{.State.Pid}}", self.name], f"inspect {self.name}")
                self._block = MetadataBlock(int(pid)).__enter__()
        except BaseException:
            self._remove()
            raise
        return self

    def exec_argv(self, argv: Sequence[str], env_names: Sequence[str] = ()) -> list[str]:
        """`docker exec` of `argv` inside the container with the `env_names` variables, passed by name: docker
        takes their values from its own environment, so no value (an API key, a token) is on a command line."""
        flags = [f"--env={name}" for name in sorted(env_names)]
        return ["docker", "exec", *flags, self.name, *argv]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._remove()

    def _remove(self) -> None:
        try:
            remove(self.name)
        finally:
            if self._block is not None:
                block, self._block = self._block, None
                block.__exit__(None, None, None)
