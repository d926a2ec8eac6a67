"""Server containers through the docker CLI: the `docker run` a plan implies, `exec` into it, removal on every exit.

On NPUs the arguments follow vllm-ascend's documented `docker run`: one `--device=/dev/davinciN` per card plus the
three management devices, the driver, npu-smi, dcmi and `/etc/ascend_install.info` mounted read-only from the host.
On GPUs the cards go through `--gpus`; on the CPU default there is no device. Every container has host networking
(the harness reaches the server on 127.0.0.1), a shared-memory size, the plan's mounts, and read-only mounts of
what the server reads from the host (its model folders; with `container.host-environment`, the harness's Python
environment). The container runs `sleep infinity` (the image's entrypoint replaced: vLLM's own images start
`vllm serve` from theirs); servers are started with `docker exec`. Leaving the context, or the harness exiting by
any other path (atexit), removes the container with `docker rm -f`, which ends everything inside it; a run killed
outright leaves it to the next run's sweep (harness.runtime.sweep), by its labels.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import PurePosixPath
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
    @property
    def metadata_address(self) -> str: ...
    @property
    def host_environment(self) -> bool: ...


class ContainerError(HarnessError):
    """docker refused to start or remove a container."""


def device_arguments(platform: str, cards: Sequence[int]) -> list[str]:
    """What gives the container its cards. Pure."""
    if platform == "npu":
        args = [f"--device=/dev/davinci{n}" for n in cards]
        args += [f"--device={d}" for d in MANAGEMENT_DEVICES]
        return args + [f"--volume={path}:{path}:ro" for path in DRIVER_MOUNTS]
    if platform == "gpu":
        return [f'--gpus="device={",".join(str(n) for n in cards)}"']
    return []


def environment_paths() -> list[str]:
    """The harness's Python environment: the interpreter's installation and the virtual environment on top of it."""
    return sorted({sys.base_prefix, sys.prefix})


def host_mounts(spec: ContainerSpec, reads: Sequence[str], writes: Sequence[str] = ()) -> list[str]:
    """Mounts at their own paths of the host folders the server reads (`reads`, e.g. its model; read-only) and
    writes (`writes`, its caches), and, with `host_environment`, of the harness's Python environment (read-only);
    a folder a plan mount or an earlier one already covers is left to it (docker refuses two mounts at one path).
    Pure but for the interpreter's paths."""
    targets = [PurePosixPath(m.split(":")[1]) for m in spec.mounts]
    if spec.work_dir:
        targets.append(PurePosixPath(spec.work_dir))
    wanted = [(p, ":ro") for p in (*(environment_paths() if spec.host_environment else []), *reads)]
    wanted += [(p, "") for p in writes]
    mounts: list[str] = []
    for path, mode in wanted:
        where = PurePosixPath(path)
        if any(where == t or t in where.parents for t in targets):
            continue
        targets.append(where)
        mounts.append(f"{path}:{path}{mode}")
    return mounts


def run_arguments(
    spec: ContainerSpec,
    cards: Sequence[int],
    name: str,
    labels: dict[str, str],
    platform: str = "npu",
    reads: Sequence[str] = (),
    writes: Sequence[str] = (),
) -> list[str]:
    """The `docker run` command line for `spec` on `platform` with cards `cards`. Pure."""
    args = ["docker", "run", "--detach", "--name", name, "--network=host", f"--shm-size={spec.shm_size}"]
    args += [f"--label={k}={v}" for k, v in sorted(labels.items())]
    args += device_arguments(platform, cards)
    if spec.work_dir:
        args += [f"--volume={spec.work_dir}:{spec.work_dir}", f"--workdir={spec.work_dir}"]
    args += [f"--volume={mount}" for mount in spec.mounts]
    args += [f"--volume={mount}" for mount in host_mounts(spec, reads, writes)]
    args += [f"--env={k}" for k in sorted(spec.env)]  # values from docker's environment, off the command line
    # The image's own entrypoint is replaced: vLLM's images start `vllm serve` from theirs (vllm/vllm-openai).
    return [*args, "--entrypoint=sleep", spec.image, "infinity"]


def docker_problem(timeout_s: float = 20.0) -> str | None:
    """Why no container can be started here (no docker, no daemon answering), or None."""
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        return "docker is not installed: run scripts/docker-up (as root) to install and start it"
    except subprocess.TimeoutExpired:
        return f"the Docker daemon did not answer within {timeout_s:.0f} s"
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"no Docker daemon answers ({detail[0]}): run scripts/docker-up (as root) to start one"
    return None


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


@contextlib.contextmanager
def paused(name: str) -> Iterator[None]:
    """Container `name` frozen (`docker pause`, the freezer cgroup) for the `with` block, unpaused on every exit."""
    _docker(["docker", "pause", name], f"pause {name}")
    try:
        yield
    finally:
        _docker(["docker", "unpause", name], f"unpause {name}")


def require_image(image: str) -> None:
    """Refuse an image this docker daemon does not have (no run pulls behind the user's back: a pull takes long,
    and where no registry is reachable it hangs until docker gives up)."""
    try:
        _docker(["docker", "image", "inspect", "--format", "{{.Id}}", image], f"find the image {image}")
    except ContainerError as exc:
        raise ContainerError(
            f"container.image {image} is not on this node's docker ({exc}); pull or load it first "
            f"(docker pull {image}, or docker load -i FILE), or name llmqual/cpu-base, the harness's CPU image"
        ) from None


def remove(name: str) -> None:
    """Remove a container and everything running in it (idempotent)."""
    with contextlib.suppress(ContainerError):
        _docker(["docker", "rm", "--force", name], f"remove {name}")
    _LIVE.discard(name)


def remove_owned(name: str, owner: str) -> None:
    """Remove the container `name` only if it carries the `owner` label: after a `docker run` that failed, the
    name may belong to someone else's container (a name clash), which must be left alone."""
    found = ""
    with contextlib.suppress(ContainerError):
        found = _docker(
            [
                "docker",
                "ps",
                "--all",
                "--quiet",
                "--filter",
                f"name=^{name}$",
                "--filter",
                f"label=llmqual.owner={owner}",
            ],
            f"look for {name}",
        )
    if found:
        remove(name)
    _LIVE.discard(name)


@atexit.register
def _remove_leftovers() -> None:
    for name in list(_LIVE):
        remove_owned(name, owner_token())


class Container:
    """A running server container; `exec_argv` wraps a command to run inside it. `reads` are host folders the
    server reads (mounted read-only at their own paths), `writes` those it writes (its caches)."""

    def __init__(
        self,
        spec: ContainerSpec,
        cards: Sequence[int],
        run_id: str | None = None,
        *,
        platform: str = "npu",
        reads: Sequence[str] = (),
        writes: Sequence[str] = (),
        name: str | None = None,
        owner: str | None = None,
    ) -> None:
        self.spec, self.cards, self.platform = spec, list(cards), platform
        self.reads, self.writes = list(reads), list(writes)
        self.name = name or f"llmqual-{uuid.uuid4().hex[:10]}"
        run_id = run_id if run_id is not None else os.environ.get(RUN_ENV, "")
        # A later run removes it if the harness dies without doing so. `name` and `owner` are given by a rehearsal.
        owned = {"llmqual.owner": owner or owner_token()}
        self.labels = {"llmqual": "1", **owned, **({"llmqual.run": run_id} if run_id else {})}
        self.id: str | None = None
        self._block: MetadataBlock | None = None

    def run_argv(self) -> list[str]:
        """The `docker run` that starts it."""
        return run_arguments(self.spec, self.cards, self.name, self.labels, self.platform, self.reads, self.writes)

    def __enter__(self) -> Container:
        _LIVE.add(self.name)  # registered first: a run that fails half-way is still removed
        try:
            self.id = _docker(self.run_argv(), f"start {self.spec.image}", env=self.spec.env)
            if self.spec.block_metadata:
                pid = _docker(["docker", "inspect", "--format", "{{.State.Pid}}", self.name], f"inspect {self.name}")
                self._block = MetadataBlock(int(pid), self.spec.metadata_address).__enter__()
                self._block.verify(self.run_inside)
        except BaseException:
            self._remove()
            raise
        return self

    def run_inside(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the container to its end (a short command: a probe, not a server)."""
        try:
            return subprocess.run(
                self.exec_argv(argv), capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ContainerError(f"docker exec in {self.name} did not end within {DOCKER_TIMEOUT_S:.0f} s") from exc

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
            if self.id is not None:  # docker started it for us: the name is ours
                remove(self.name)
            else:  # the run failed or was interrupted: remove what it may have created, not a namesake's
                remove_owned(self.name, self.labels["llmqual.owner"])
        finally:
            if self._block is not None:
                block, self._block = self._block, None
                block.__exit__(None, None, None)
