"""A plan's `container`: run the server inside an NPU container, as the vendor manuals do by hand.

container:
  image: quay.io/ascend/vllm-ascend:v0.9.1
  shm-size: 1g
  work-dir: /data/work                 # mounted at the same path and used as the working directory
  mounts: ["/data/models:/data/models:ro"]
  env: {VLLM_USE_MODELSCOPE: "False"}

The embedded default names the harness's own CPU base image, `llmqual/cpu-base` (built from Debian's packages,
harness.runtime.image), with `host-environment: true`: the harness's Python environment is mounted read-only at
the same paths and serves, so the container runs the very vLLM the rest of the run uses.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from pathlib import PurePosixPath

from pydantic import Field, field_validator

from harness.config.base import Frozen
from harness.runtime.metadata import METADATA_ADDRESS

PROTECTED = PurePosixPath("/home/ma-user")  # the ModelArts images' user home: a mount over it breaks the image


class ContainerSpec(Frozen):
    image: str = Field(min_length=1)
    shm_size: str = "1g"
    work_dir: str | None = None
    mounts: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    python: str = Field("python3", description="the interpreter inside the image that runs vLLM")
    host_environment: bool = Field(
        False,
        description="mount the harness's Python environment read-only at its own paths and serve with it "
        "(the CPU base image has no vLLM of its own); `python` is then ignored",
    )
    # Refuse the container the cloud metadata address with an iptables rule for its cgroup, as a node shared by
    # several users requires (harness.runtime.metadata). Needs root and iptables.
    block_metadata: bool = True
    metadata_address: str = Field(
        METADATA_ADDRESS, description="the address the block refuses (your cloud's metadata service if not the usual)"
    )

    @field_validator("shm_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not re.fullmatch(r"\d+[bkmg]?", value.lower()):
            raise ValueError(f"{value!r} is not a docker size like 1g or 512m")
        return value

    @field_validator("metadata_address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address like {METADATA_ADDRESS}") from None

    @field_validator("mounts")
    @classmethod
    def _mounts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for mount in value:
            parts = mount.split(":")
            if len(parts) not in (2, 3) or not all(parts[:2]) or not parts[1].startswith("/"):
                raise ValueError(f"mount {mount!r} is not HOST:CONTAINER[:ro] with an absolute container path")
            check_target(parts[1])
        return value

    @field_validator("work_dir")
    @classmethod
    def _work_dir(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.startswith("/"):
                raise ValueError("work-dir must be an absolute path")
            check_target(value)
        return value


def check_target(path: str) -> None:
    """Refuse a mount at, under or above /home/ma-user (a mount at /home or / hides it too). The path is
    normalised first (`/home/x/../ma-user` is /home/ma-user); a relative target is refused."""
    if not path.startswith("/"):
        raise ValueError(f"the mount target {path} is not an absolute path inside the container")
    target = PurePosixPath(posixpath.normpath(path))
    if target == PROTECTED or PROTECTED in target.parents or target in PROTECTED.parents:
        raise ValueError(f"a mount at {path} would hide the image's {PROTECTED}; mount elsewhere (e.g. /data)")
