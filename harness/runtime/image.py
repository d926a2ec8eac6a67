"""The CPU base image: a Debian root filesystem made from Debian's own packages and imported into docker.

On a node the plan names the vendor's image (`container.image: quay.io/ascend/vllm-ascend:...`). The embedded
default has no vendor image and no registry to pull one from, so the harness makes the smallest image that runs
vLLM's CPU build: `debootstrap --variant=minbase` of Debian plus the shared libraries the harness's Python and
vLLM load, nothing else. vLLM itself is not in the image: a plan with `container.host-environment: true` mounts the
harness's own Python environment read-only at the same paths, so the container serves with exactly the vLLM the
rest of the run uses.

A plan asks for it by the name `llmqual/cpu-base` (`BASE_IMAGE`); the tag is a hash of what goes into the image
(the recipe below and the Debian mirror), so a changed recipe builds a new image and an unchanged one is built
once per docker daemon (`llmqual image build` builds it ahead of a run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError
from harness.paths import cache_root
from harness.runtime.container import require_image
from harness.runtime.locks import file_lock

BASE_IMAGE = "llmqual/cpu-base"
SUITE = "bookworm"
# What the harness's Python (its standard library's extension modules) and vLLM's CPU build load from the system,
# and the C++ compiler torch's inductor needs: vLLM compiles a few functions even in eager mode (the sampler's
# logprob ranks), and on CPU inductor generates C++.
PACKAGES = (
    "ca-certificates",
    "g++",
    "libbz2-1.0",
    "libffi8",
    "libgomp1",
    "liblzma5",
    "libncursesw6",
    "libnuma1",
    "libreadline8",
    "libsqlite3-0",
    "libssl3",
    "libuuid1",
    "procps",
    "zlib1g",
)
RECIPE = 1  # bump when the build below changes in a way the package list does not show
MIRROR_ENV = "LLMQUAL_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT_S = 1800.0
DOCKER_TIMEOUT_S = 120.0


class ImageError(HarnessError):
    """The image could not be found or built."""


def mirror() -> str:
    return os.environ.get(MIRROR_ENV, DEFAULT_MIRROR)


def base_image_tag(debian_mirror: str | None = None) -> str:
    """`llmqual/cpu-base:<hash of the recipe>`. Pure."""
    recipe = json.dumps([RECIPE, SUITE, sorted(PACKAGES), debian_mirror or mirror()])
    return f"{BASE_IMAGE}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def is_base_image(image: str) -> bool:
    return image == BASE_IMAGE or image.startswith(f"{BASE_IMAGE}:")


def image_exists(image: str) -> bool:
    done = _run(["docker", "image", "inspect", "--format", "{{.Id}}", image], DOCKER_TIMEOUT_S, "inspect")
    return done.returncode == 0


def ensure_base_image(cache: Path, progress: Callable[[str], None] = print) -> str:
    """The CPU base image's tag, built first if this docker daemon does not have it. Concurrent callers (xdist
    workers, two runs) build it once: the build holds a lock in `cache`."""
    tag = base_image_tag()
    if image_exists(tag):
        return tag
    with file_lock(cache / "locks" / "cpu-base-image.lock", timeout_s=BUILD_TIMEOUT_S):
        if image_exists(tag):  # built by whoever held the lock
            return tag
        build_base_image(tag, cache, progress)
    removed = prune_base_images(keep=tag)
    if removed:
        progress(f"removed the older {BASE_IMAGE} tags {', '.join(removed)}")
    return tag


def prune_base_images(keep: str) -> list[str]:
    """Remove every tag of the CPU base image but `keep` (earlier recipes' images, 440 MB each); a tag a container
    still uses is left to docker's refusal. The tags removed."""
    listed = _run(["docker", "images", BASE_IMAGE, "--format", "{{.Repository}}:{{.Tag}}"], DOCKER_TIMEOUT_S, "list")
    removed = []
    for tag in (t for t in listed.stdout.split() if t != keep and is_base_image(t)):
        if _run(["docker", "image", "rm", tag], DOCKER_TIMEOUT_S, "remove").returncode == 0:
            removed.append(tag)
    return removed


def build_base_image(tag: str, cache: Path, progress: Callable[[str], None] = print) -> float:
    """debootstrap the root filesystem in a scratch folder under `cache`, import it as `tag`; returns seconds."""
    if shutil.which("debootstrap") is None:
        raise ImageError(
            f"building {BASE_IMAGE} needs debootstrap (Debian's package): run scripts/docker-up, which installs it, "
            "or name an image you have in the plan's container.image"
        )
    started = time.monotonic()
    progress(f"building {tag}: debootstrap {SUITE} (minbase, {len(PACKAGES)} packages) from {mirror()}")
    scratch = cache / "image-build"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        root = Path(tmp) / "rootfs"
        argv = [
            "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror(),
        ]  # fmt: skip
        done = _run(argv, BUILD_TIMEOUT_S, "debootstrap")
        if done.returncode != 0:
            log = root / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else done.stderr[-2000:]
            raise ImageError(f"debootstrap of {SUITE} from {mirror()} failed (exit {done.returncode}):\n{detail}")
        with contextlib.suppress(FileNotFoundError):  # apt's downloaded packages: not needed at run time
            shutil.rmtree(root / "var" / "cache" / "apt" / "archives")
        progress(f"building {tag}: importing the root filesystem into docker")
        _import(root, tag)
    seconds = time.monotonic() - started
    progress(f"built {tag} in {seconds:.0f} s")
    return seconds


def _import(root: Path, tag: str) -> None:
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    try:
        change = ['--change=CMD ["bash"]', f"--message=llmqual CPU base image ({SUITE} minbase)"]
        done = subprocess.run(
            ["docker", "import", *change, "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait(timeout=60)
    if done.returncode != 0:
        raise ImageError(f"docker import of {tag} failed: {done.stderr.strip()[-2000:]}")


def _run(argv: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise ImageError(f"{argv[0]} is not installed (needed to {what} the image); run scripts/docker-up") from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"{argv[0]} did not {what} within {timeout_s:.0f} s") from exc


def resolved_image(image: str) -> str:
    """The image to run for a plan's `container.image`: the harness's CPU base image by its content tag (built now
    if this docker daemon lacks it), else the plan's image, which must already be on the node."""
    if is_base_image(image):
        return ensure_base_image(cache_root())
    require_image(image)
    return image
